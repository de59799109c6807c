"""A minimal stand-in for DeerFlow's package: only the shapes the integration touches.

DeerFlow is not on the package index, so the tests model the parts of it that
``mongo_runevents.deerflow`` relies on, as read in DeerFlow's code: its
``RunEventStore`` interface, its user context with the ``AUTO`` sentinel, its
run-events configuration model and the ``make_run_event_store`` factory.
"""
