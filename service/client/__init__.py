"""The client application: the `decaylab` CLI, its REST client, the report, `make run` and
`make reproduce`.

Everything here talks to the service over REST (`service.client.api`); nothing in the server
imports it. The one way back is `decaylab serve`, which imports the server when it is run.
"""
