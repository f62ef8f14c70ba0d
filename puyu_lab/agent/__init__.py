"""Agent stage (Lagent / AgentLego): tools, protocols and the agent loop."""
