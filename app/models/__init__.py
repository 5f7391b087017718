"""All models, imported here so Alembic and the app see the whole schema."""
from app.models.audit import AuditEvent
from app.models.base import Base, TenantScoped
from app.models.billing import (Advance, Bill, BillLine, ClientReceipt, CreditNote, DayClosing, DocumentCounter,
                                Payment, PaymentLink, Refund)
from app.models.einvoice import EInvoice
from app.models.gateway import BillingException, GatewayEvent, GatewayPayment
from app.models.reconciliation import BankMapping, StatementImport, StatementLine
from app.models.instrument import Instrument, InstrumentCode, InstrumentMessage, UnmatchedResult
from app.models.instrument_order import InstrumentOrder
from app.models.catalogue import (Client, Department, LabTest, Panel, PanelItem, PriceList, PriceListItem,
                                  ReferenceInterval, Referrer)
from app.models.notification import Notification, WebhookDelivery, WhatsAppWindow
from app.models.order import Order, OrderItem, OrderTest, Sample
from app.models.org import Branch, Organization
from app.models.patient import NameWord, Patient, PatientWord
from app.models.patient_portal import PatientOtp
from app.models.report import Report
from app.models.result import CannedComment, CriticalCall, Result
from app.models.user import ApiToken, Role, User

__all__ = [
    "Advance", "BankMapping", "BillingException", "ClientReceipt", "CreditNote", "DayClosing", "EInvoice",
    "GatewayEvent", "GatewayPayment", "PaymentLink", "Refund", "StatementImport", "StatementLine",
    "ApiToken", "AuditEvent", "CannedComment", "CriticalCall", "Base", "Bill", "BillLine", "Branch", "Client", "Department", "DocumentCounter", "Instrument",
    "InstrumentCode", "InstrumentMessage", "Result", "UnmatchedResult",
    "LabTest", "NameWord", "Notification", "WebhookDelivery", "WhatsAppWindow", "Order", "OrderItem", "OrderTest", "Organization", "Panel", "PanelItem", "Patient",
    "PatientOtp", "PatientWord", "Payment",
    "PriceList", "PriceListItem", "ReferenceInterval", "Referrer", "Report", "Role", "Sample", "TenantScoped", "User",
]
