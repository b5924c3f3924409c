"""Serving memory to many agents: the REST service (rest.py) and the MCP server (mcp.py)."""
