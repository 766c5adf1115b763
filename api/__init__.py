"""The REST API for integrators (/api/v1/): the inbox, customers and the knowledge base, read and written through the same services and visibility rules as the UI."""
