"""The helpers the design card does not name: rules, errors, dependencies, middleware,
idempotency, rate limits, exports, search terms and the API documentation."""
