"""`flask --app wsgi lis ...`: the operator's commands."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

lis = AppGroup("lis", help="Laboratory information system commands.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(lis)


@lis.command("seed-demo")
@click.option("--password", envvar="LIS_DEMO_PASSWORD", default=None,
              help="Give every demo user this password instead of random ones (for test rigs).")
def seed_demo_command(password: str | None) -> None:
    """Create the demo lab (organization 'demo'). Idempotent."""
    from app.services.seed import seed_demo

    created = seed_demo(password=password)
    if created is None:
        click.echo("Demo lab already present; nothing changed.")
        return
    print_demo_credentials(created)


def print_demo_credentials(passwords: dict[str, str]) -> None:
    click.echo("")
    click.echo("Demo lab 'demo' created. These passwords are shown once; write them down:")
    for username, password in passwords.items():
        click.echo(f"    {username:<20} {password}")
    click.echo("(Forgot one? flask --app wsgi lis reset-password <username>)")
    click.echo("")


@lis.command("create-api-token")
@click.option("--org", "org_code", required=True, help="Organization code, e.g. demo")
@click.option("--role", required=True, type=click.Choice(["admin", "reception", "technician", "pathologist", "billing"]))
@click.option("--name", default="cli", help="Who will use the token")
def create_api_token(org_code: str, role: str, name: str) -> None:
    """Print a new API token (last line of output). Only its hash is stored."""
    from app import audit, security
    from app.extensions import db
    from app.models import Organization
    from app.services import api_tokens

    org = db.session.execute(select(Organization).where(Organization.code == org_code)).scalar_one_or_none()
    if org is None:
        raise click.ClickException(f"no organization with code {org_code!r}")
    security.use_tenant(db.session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="cli", org_id=org.id)):
        token, raw = api_tokens.create_token(org.id, role, name)
        db.session.commit()
    click.echo(f"Created API token {token.prefix}… for {org.code} with role {role}:")
    click.echo(raw)


@lis.command("reset-password")
@click.argument("username")
def reset_password(username: str) -> None:
    """Give a staff user a new random password (printed) and unlock the account."""
    from app import audit, security
    from app.extensions import db
    from app.models import User
    from app.services import users

    user = db.session.execute(
        select(User).where(User.username == username.lower()).execution_options(all_tenants=True)
    ).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    security.use_tenant(db.session, user.org_id)
    with audit.acting_as(audit.AuditContext(actor_label="cli", org_id=user.org_id)):
        password = users.reset_password(user)
        db.session.commit()
    click.echo(f"New password for {user.username}:")
    click.echo(password)


@lis.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
def worker_command(burst: bool) -> None:
    """Run an RQ worker on the app's queues (with RQ's scheduler for delayed jobs)."""
    from workers.runner import run_worker

    run_worker(current_app._get_current_object(), burst=burst)  # type: ignore[attr-defined]


@lis.command("cron")
def cron_command() -> None:
    """Run the RQ cron scheduler for the periodic jobs declared in workers/schedule.py."""
    from workers.runner import run_cron

    run_cron(current_app._get_current_object())  # type: ignore[attr-defined]


@lis.command("listeners")
def listeners_command() -> None:
    """Run the instrument listener process (HL7/MLLP and ASTM servers)."""
    from workers.listeners import main

    main(current_app._get_current_object())  # type: ignore[attr-defined]


@lis.command("up")
@click.option("--bind", envvar="LIS_BIND", default="127.0.0.1:8000", show_default=True)
@click.option("--web-workers", envvar="LIS_WEB_WORKERS", default=2, show_default=True)
def up_command(bind: str, web_workers: int) -> None:
    """Run the whole system: migrate, seed the demo lab once, then supervise web,
    worker, cron scheduler and listeners until Ctrl-C."""
    from app.supervisor import prepare_database, supervise

    prepare_database()
    supervise(bind=bind, web_workers=web_workers)
