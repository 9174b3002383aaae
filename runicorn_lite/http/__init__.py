"""HTTP pieces that every API of the server shares: errors and their rendering, body reading
with limits, middleware, rate limiting, caching headers, routing and the OpenAPI document.

Nothing here knows an endpoint; ``api/`` (V1, V2) and ``optimization/`` both build on it and
never import each other.
"""
