"""The fault suite: real coordinator, worker and Valkey processes, faults made for real."""
