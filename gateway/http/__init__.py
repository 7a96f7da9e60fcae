"""The HTTP face: the FastAPI app, bearer tokens, and the uvicorn server around them."""
