"""Protocol and provider clients: HL7 v2/MLLP, ASTM, FHIR, UPI links, Razorpay, WhatsApp,
SMS, email, the GST IRP. Each provider client speaks the provider's documented HTTP API
and is chosen by configuration; unconfigured, messages go to a visible outbox."""
