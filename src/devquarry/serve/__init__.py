"""`devquarry serve`: the study workbench, a local web app over the store to browse, code and agree."""

from devquarry.serve.app import Workbench, create_app
from devquarry.serve.run import serve

__all__ = ["Workbench", "create_app", "serve"]
