"""The audit log: who signed in (or failed to), who changed what, who exported what. Append-only."""
