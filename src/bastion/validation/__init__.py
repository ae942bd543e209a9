"""Input validation from the API's OpenAPI document."""
