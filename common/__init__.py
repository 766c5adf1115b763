"""The bottom of the house: small helpers every app may use and that use no app (database
plumbing, HTML sanitising, typed requests). Nothing here imports a Parley app."""
