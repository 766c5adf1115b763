"""What someone running Parley watches: metrics, deep health, structured logs, `manage.py doctor`."""
