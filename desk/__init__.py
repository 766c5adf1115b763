"""The support manager's tools: labels, SLA policies, CSAT, automation rules and macros, collision control, send later."""
