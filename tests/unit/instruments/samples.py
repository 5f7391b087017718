"""Realistic analyzer messages, shaped after the vendor samples described in
../shared/reference/instruments.md §1.3, §1.5, §3 and §4. Patients and ids are invented.

Each fixture is written one segment/record per line for review and joined with CR, the HL7
segment and ASTM record terminator."""
from __future__ import annotations


def _hl7(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode("utf-8")


def _astm(*records: str, encoding: str = "utf-8") -> bytes:
    return ("\r".join(records) + "\r").encode(encoding)


# Mindray BC-6800 hematology: sample id in OBR-3, LOINC in OBX-3, H~A / ~N flags, IS mode rows,
# an ED (Base64) histogram, MSH-18 UNICODE with a UTF-8 patient name (§1.3, §4).
MINDRAY_BC6800_ORU = _hl7(
    r"MSH|^~\&|BC-6800|Mindray|||20240612093015||ORU^R01|1017|P|2.3.1||||||UNICODE",
    r"PID|1||^^^^MR||^शर्मा प्रिया|||F",
    r"PV1|1||Ward 3^^Bed 12",
    r"OBR|1||24061201|00001^Automated Count^99MRC|||20240612092800|||||||||||||||||HM||||||||admin",
    r"OBX|1|IS|08001^Take Mode^99MRC||O||||||F",
    r"OBX|2|IS|08002^Blood Mode^99MRC||W||||||F",
    r"OBX|3|IS|08003^Test Mode^99MRC||CBC+DIFF||||||F",
    r"OBX|4|NM|6690-2^WBC^LN||12.45|10*9/L|3.50-9.50|H~A|||F",
    r"OBX|5|NM|704-7^BAS#^LN||0.03|10*9/L|0.00-0.06|~N|||F",
    r"OBX|6|NM|718-7^HGB^LN||98|g/L|115-150|L~A|||F",
    r"OBX|7|NM|777-3^PLT^LN||***|10*9/L|125-350||||F",
    r"OBX|8|IS|12002^Leucocytosis^99MRC||T||||||F",
    r"OBX|9|ED|15000^WBC Histogram. BMP^99MRC||^Image^BMP^Base64^Qk02AAAAAAAAADYAAAAoAAAA||||||F",
)

# Mindray BS-240 chemistry: one test per message, test number in OBX-3, name in OBX-4, barcode in
# OBR-2, rack position in OBR-3, MSH-16 = result type (0 patient, 1 calibration, 2 QC) (§1.3, §4).
def mindray_bs240_oru(result_type: str = "0", control_id: str = "12") -> bytes:
    return _hl7(
        rf"MSH|^~\&|Mindray|BS-240|||20240612101500||ORU^R01|{control_id}|P|2.3.1||||{result_type}||ASCII|||",
        r"PID|1||||||0|||||||||||||||||||||||",
        r"OBR|1|24061188|3|Mindray^BS-240|N||20240612095500||||||||serum|||||||||||||||||||||||||||||||||",
        r"OBX|1|NM|2|ALT|35.6|U/L|0.0-40.0|N|||F||35.6|20240612101000|||0|",
    )


MINDRAY_BS240_ORU = mindray_bs240_oru()

# Mindray BS query for a barcode (QRY^Q02, QRD-8), answered with QCK^Q02 (§1.5).
MINDRAY_BS_QRY = _hl7(
    r"MSH|^~\&|Mindray|BS-240|||20240612101600||QRY^Q02|13|P|2.3.1||||||ASCII|||",
    r"QRD|20240612101600|R|D|1|||RD|24061188|OTH|||T|",
    r"QRF|BS-240|||||RCT|COR|ALL||",
)

# Generic chemistry (v2.5.1, 3-component MSH-9): HH/LL critical flags, NTE on the OBR and on an
# OBX, and every escape in value, units and comment (§1.3, §1.4).
GENERIC_CHEMISTRY_ORU = _hl7(
    r"MSH|^~\&|CHEMLAB|MAIN LAB|LIS|HOSPITAL|20240612110000||ORU^R01^ORU_R01|MSG00077|P|2.5.1",
    r"PID|1||MRN123^^^HOSP^MR||Kumar^Ravi||19800101|M",
    r"OBR|1|24061300||CHEM^Chemistry panel|||20240612103000||||||||||||||||||F",
    r"NTE|1|L|Sample slightly haemolysed",
    r"OBX|1|NM|GLU^Glucose^L||612|mg/dL|70-110|HH|||F|||20240612105500",
    r"NTE|1|L|Critical value called to Dr. Rao \T\ team",
    r"NTE|2|L|Read back\.br\confirmed",
    r"OBX|2|NM|K^Potassium^L||2.1|mmol/L|3.5-5.1|LL|||F|||20240612105510",
    r"OBX|3|ST|NOTE^Remark\S\Note^L||A\F\B\R\C\E\D\T\E|10\S\9/L|||||F",
    r'OBX|4|NM|CREA^Creatinine^L||""|mg/dL|0.6-1.3||||X',
)

# Roche cobas pure, IHE LAW OUL^R22 (HL7 2.5.1): MSH-15 NE / MSH-16 AL, id in SPM-2 as
# ``id&BARCODE`` and SAC-3, OBR-2 the HL7 null, OBX-14 empty and the time in OBX-19, an NM row
# with a CE row next to it, ``N^^HL70078`` flags, comma decimal, µ in units (§1.5, §4).
ROCHE_COBAS_PURE_OUL = _hl7(
    r"MSH|^~\&|cobas pure||Host||20240612120000+0530||OUL^R22^OUL_R22|13578|P|2.5.1|||NE|AL||UNICODE UTF-8|||LAB-29^IHE",
    r"PID|||||^^^^^^U|||U",
    r"SPM|1|24061177&BARCODE||SERUM^^99ROC|||||||P^^HL70369",
    r"SAC|||24061177^BARCODE|||||||50016|1",
    r'OBR|1|""||20340^^99ROC^^^IHELAW|||||||A',
    r"ORC|SC||||CM",
    r"TQ1|||||||||R^^HL70485",
    r"OBX|1|NM|20340^^99ROC^^^IHELAW|1|47,3|U/L^^UCUM|10-50|N^^HL70078|||F|||||BatchID||c503^ROCHE~1^ROCHE|20240612115520",
    r"OBX|2|CE|20340^^99ROC^^^IHELAW|1|1^^99ROC||||||F|||||||c503^ROCHE|20240612115520",
    r"OBX|3|NM|10011^^99ROC^^^IHELAW|1|2,41|µIU/mL^^UCUM|0.27-4.2|N^^HL70078|||F|||||||e801^ROCHE|20240612115610",
    r"TCD|20340^^99ROC^^^IHELAW|^1^:^1",
)

# The same analyzer sending a QC specimen (SPM-11 role Q).
ROCHE_COBAS_PURE_QC = ROCHE_COBAS_PURE_OUL.replace(b"|||||||P^^HL70369", b"|||||||Q^^HL70369")

# Sysmex XN (ASTM): space-padded sample no. in O-4 component 3, test code in R-3 component 5,
# ``----`` value, W flag, ``&R&`` escape in a file reference, a C record on a result (§3, §4).
SYSMEX_XN_ASTM = _astm(
    r"H|\^&|||XN-550^00-24^11001^^^^BH123456||||||||E1394-97",
    r"P|1|||100|^Brown^Jim||20010820|M|||||^Dr.1||||||||||||^^^WEST",
    r"C|1||PatientComment^||",
    r"O|1||^^                24061205^B|^^^^WBC\^^^^RBC\^^^^HGB\^^^^PLT|||||||N||||||||||||||F",
    r"C|1||Sample comment^||",
    r"R|1|^^^^WBC^1|7.08|10*3/uL||N||||Sysmex^^||20240612093500",
    r"R|2|^^^^RBC^1|4.52|10*6/uL||N||||||20240612093500",
    r"R|3|^^^^HGB^1|13.1|g/dL||N||||||20240612093500",
    r"R|4|^^^^PLT^1|----|10*3/uL||W||||||20240612093500",
    r"C|1|I|Platelet clumps?^||G",
    r"R|5|^^^^WBC_Abn_Scattergram^1|PNG&R&20240612&R&20240612_093500_WBC.PNG|||N||||||20240612093500",
    r"L|1|N",
)

# Beckman Coulter DxH (ASTM): delimiters ``H|\!~``, ``value!flag`` in R-4, a dilution field at
# R-6 so range/flag/status/completed are R-7/8/10/14, ``^`` literal in units (§3, §4).
BECKMAN_DXH_ASTM = _astm(
    r"H|\!~|||DxH|||||LIS||P|LIS2-A2|20240612094500",
    r"P|1|||PAT001|!Verma!Anil||19750304|M",
    r"O|1|24061210||!!!CBC|R|20240612090000|20240612090000|||||||||||||||||F",
    r"R|1|!!!WBC|9.87!|10^3/uL|1|3.5 to 10.5|N||F||||20240612094000|DxH800",
    r"R|2|!!!RBC|3.12!L|10^6/uL|1|4.2 to 5.6|L||F||||20240612094000|DxH800",
    r"R|3|!!!HGB|8.9!LL|g/dL|1|12.0 to 16.0|LL||F||||20240612094000|DxH800",
    r"L|1|N",
)

# Roche cobas e 411 host query (ASTM): id in Q-3 component 3, space-padded (§3).
ROCHE_E411_QUERY = _astm(
    r"H|\^&|||cobas-e411^1|||||host|TSREQ^REAL|P|1",
    r"Q|1|^^                  24061177^0^50016^1^^S1^SC||ALL||||||||O",
    r"L|1|N",
)

# Roche cobas e 411 results: ``^^^10/`` test code with the dilution after "/", a QC order
# (O-12 action code Q), and a Latin-1 µ (an 8-bit device, §3, §4).
ROCHE_E411_RESULTS_LATIN1 = _astm(
    r"H|\^&|||cobas-e411^1|||||host|RSUPL^REAL|P|1",
    r"P|1",
    r"O|1|24061177|0^50016^1^^S1^SC|^^^10^|R||||||N||||1||||||||||F",
    r"R|1|^^^10/|2.41|µIU/mL||N||F||||20240612121500",
    r"R|2|^^^A/G|1.4|||||F",
    r"P|2",
    r"O|1|PC U1|0^50016^2^^S1^SC|^^^10^|R||||||Q||||1||||||||||F",
    r"R|1|^^^10/2|1.02|µIU/mL||||F||||20240612121600",
    r"L|1|N",
    encoding="latin-1",
)
