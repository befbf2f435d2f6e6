"""Sample values shared by the benchmarks and the tests."""

ADDRESS = {
    "street": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "postalCode": "62701",
    "country": "US",
}
