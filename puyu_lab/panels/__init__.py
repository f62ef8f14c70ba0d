"""Views over the engines: widgets and HTML that subscribe to engine events and draw."""
from .base import HTMLView, Throttle, html_table, run_in_thread  # noqa: F401
from .chain_map import chain_map, doctor_view, profiles_view  # noqa: F401
