"""Analyzer protocols, pure and socket-free: MLLP framing and HL7 v2 (``mllp``, ``hl7``), ASTM
E1381/LIS1-A link layer (``astm_link``) and E1394/LIS2-A2 records (``astm``). Every parser
returns the same ``parsed.ParsedMessage`` so the services that store results do not care which
protocol the analyzer speaks. Rules come from ../shared/reference/instruments.md (cited by §)."""
