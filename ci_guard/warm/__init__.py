"""The warm launcher: ``ci-guard run`` started from a process that has already loaded ci-guard.

A cold ``ci-guard run`` spends ~0.2 s of CPU before its agent starts, nearly all of it importing
click, pydantic (and building the policy models), psycopg and asyncio. Where many runs start on
one machine (a job that fans out agents, a self-hosted runner, a fleet on one org budget) that
start-up, not the agents, bounds how fast they all serve. ``ci-guard warm start`` loads all of it
once into a small server; with ``CI_GUARD_WARM`` naming its socket, ``ci-guard run`` becomes a thin
client (the standard library only) that hands the server its arguments, working directory,
environment and its stdin/stdout/stderr, and the server forks a child that runs exactly the code a
cold ``ci-guard run`` runs, in that environment, writing to those descriptors.

Contract (docs/warm.md):

* Nothing changes but the start-up: the child is the run (it decides, reserves, owns the run in
  the ledger, supervises the agent and exits with the same code a cold run would); the client
  exits with that code, or dies of the same signal.
* The client forwards SIGINT, SIGTERM and SIGHUP to the run; if the client disappears (SIGKILL),
  the run is sent SIGTERM, so its agent is stopped and its reservation settled as on a cancel.
  If the server dies, its runs get SIGTERM (``PR_SET_PDEATHSIG``) and their clients exit 82.
* The server keeps no secret: it is started with a minimal environment (never the provider
  keys), is not dumpable, listens on a socket in a private directory, and serves only its own
  user (``SO_PEERCRED``). A run's environment passes through it only while that run is forked.
* Anything unexpected before the run starts (no server, another ci-guard or Python, a refused
  request) leaves the client to start cold, with a one-line note: a warm launcher can make a
  run faster, never make it fail.
* The launcher's own ``ci-guard`` (shim.py, and _shim.c compiled) is a faster client for the
  same requests; it changes how fast a run starts, never which ci-guard runs it.
"""
