"""Façades that let code written for other state libraries run on statekit."""
