"""A local HTTP server that speaks the IRP/GSP e-invoice API as app/integrations/irp.py documents
it (NIC v1.03/v1.04 paths, plain JSON as GSPs pass it through): auth with a token that expires,
generate (computing the IRN as the IRP does, answering a repeat with error 2150 and InfoDtls),
cancel, get by IRN. The signed QR is a JWS shaped like NIC's (RS256 header, payload
{"data": "<ten keys>", "iss": "NIC Sandbox"}; the signature bytes are random: nothing verifies them).

`script` holds canned answers (status, json) served before the default behaviour, for the
error cases (a validation error, a 503)."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD = "AAACL09TXPJU5RT", "gsp-secret-xyz", "lab_api_user", "P@ssw0rd!"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(payload: dict) -> str:
    header = {"alg": "RS256", "kid": "EDC57DE1358B300BA9F179FB9A0A0A0A2E8A1C1A", "typ": "JWT",
              "x5t": "7dV94TWLMAupOPeZmgoKAseKHBo"}
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     b64url(secrets.token_bytes(256))])


def fy_of(dt: str) -> str:
    day, month, year = (int(x) for x in dt.split("/"))
    start = year if month >= 4 else year - 1
    return f"{start}-{str(start + 1)[-2:]}"


def error(code: str, message: str, info: list | None = None) -> dict:
    answer = {"Status": 0, "ErrorDetails": [{"ErrorCode": code, "ErrorMessage": message}], "Data": None}
    if info is not None:
        answer["InfoDtls"] = info
    return answer


class _Handler(BaseHTTPRequestHandler):
    server: "IrpServer"

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        self._handle(None)

    def do_POST(self):  # noqa: N802
        self._handle(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null"))

    def _handle(self, body):  # type: ignore[no-untyped-def]
        srv = self.server
        with srv.lock:
            srv.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})
            if self.headers.get("client_id") != CLIENT_ID or self.headers.get("client_secret") != CLIENT_SECRET:
                return self._answer(403, error("1004", "Invalid client id or secret"))
            if self.path == "/eivital/v1.04/auth":
                if body != {"UserName": USERNAME, "Password": PASSWORD}:
                    return self._answer(200, error("1004", "Invalid username or password"))
                token = secrets.token_hex(10)
                srv.tokens.add(token)
                expiry = (datetime.now(IST) + timedelta(hours=6)).strftime("%Y-%m-%d %H:%M:%S")
                return self._answer(200, {"Status": 1, "Data": {"ClientId": CLIENT_ID, "UserName": USERNAME,
                                                                "AuthToken": token, "TokenExpiry": expiry}})
            if self.headers.get("AuthToken") not in srv.tokens:
                return self._answer(200, error("1005", "Invalid Token"))
            if srv.script:
                status, answer = srv.script.pop(0)
                return self._answer(status, answer)
            if self.path == "/eicore/v1.03/Invoice":
                return self._answer(200, srv.generate(body))
            if self.path == "/eicore/v1.03/Invoice/Cancel":
                return self._answer(200, srv.cancel(body))
            if self.path.startswith("/eicore/v1.03/Invoice/irn/"):
                irn = self.path.rsplit("/", 1)[1]
                record = srv.invoices.get(irn)
                return self._answer(200, {"Status": 1, "Data": record} if record
                                    else error("2283", "IRN details are not found"))
            return self._answer(404, error("404", "no such API"))


class IrpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.tokens: set[str] = set()
        self.invoices: dict[str, dict] = {}  # irn → Data as generated
        self.ack = 112410000000000
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith(path)]

    def generate(self, inv: dict) -> dict:
        doc, seller, buyer = inv["DocDtls"], inv["SellerDtls"], inv["BuyerDtls"]
        irn = hashlib.sha256(f"{seller['Gstin']}{fy_of(doc['Dt'])}{doc['Typ']}{doc['No']}".encode()).hexdigest()
        if irn in self.invoices:
            known = self.invoices[irn]
            return error("2150", "Duplicate IRN",
                         [{"InfoCd": "DUPIRN", "Desc": {"AckNo": known["AckNo"], "AckDt": known["AckDt"], "Irn": irn}}])
        self.ack += 1
        ack_dt = datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")
        main = max(inv["ItemList"], key=lambda i: i["AssAmt"])
        qr_data = {"SellerGstin": seller["Gstin"], "BuyerGstin": buyer["Gstin"], "DocNo": doc["No"],
                   "DocTyp": doc["Typ"], "DocDt": doc["Dt"], "TotInvVal": inv["ValDtls"]["TotInvVal"],
                   "ItemCnt": len(inv["ItemList"]), "MainHsnCode": main["HsnCd"], "Irn": irn, "IrnDt": ack_dt}
        data = {"AckNo": self.ack, "AckDt": ack_dt, "Irn": irn,
                "SignedInvoice": jws({"data": json.dumps({**inv, "Irn": irn}), "iss": "NIC Sandbox"}),
                "SignedQRCode": jws({"data": json.dumps(qr_data, separators=(",", ":")), "iss": "NIC Sandbox"}),
                "Status": "ACT", "EwbNo": None, "EwbDt": None, "EwbValidTill": None}
        self.invoices[irn] = data
        return {"Status": 1, "Data": json.dumps(data)}  # NIC sends Data as a JSON string

    def cancel(self, body: dict) -> dict:
        record = self.invoices.get(body.get("Irn", ""))
        if record is None:
            return error("2270", "The allowed cancellation time limit is crossed, you cannot cancel the IRN")
        if record["Status"] == "CNL":
            return error("9999", "Invoice is cancelled")
        if body.get("CnlRsn") not in ("1", "2", "3", "4"):
            return error("2166", "Cancel reason is invalid")
        record["Status"] = "CNL"
        return {"Status": 1, "Data": {"Irn": body["Irn"],
                                      "CancelDate": datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")}}
