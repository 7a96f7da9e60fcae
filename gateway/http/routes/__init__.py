"""The API's routes, one module per area; each module's ``router()`` builds its APIRouter."""
