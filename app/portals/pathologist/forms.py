"""Pathologist forms. The review page's posted forms are hand-built inputs that carry the CSRF
token themselves (the service checks every rule and words the messages); this module has the
GET filter of the criticals register."""
from flask_wtf import FlaskForm
from wtforms import DateField
from wtforms.validators import Optional


class CriticalsFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form

    since = DateField("From", validators=[Optional()])
    until = DateField("To (included)", validators=[Optional()])
