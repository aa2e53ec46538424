"""The police and operator console: server-rendered pages under /console.

Included by alerts.app with one line; every route uses ConsoleRoute, which adds the security
headers and the session cookie and renders errors as pages.
"""

from fastapi import APIRouter

from alerts.console.pages import (
    account,
    approvals,
    auth,
    cases,
    dashboard,
    history,
    operator,
    static,
    stats,
)
from alerts.console.pages import maps as map_pages
from alerts.console.pages import reach as reach_pages
from alerts.console.pages import tips as tip_pages
from alerts.console.web import ConsoleRoute, FormClosed

router = APIRouter(
    prefix="/console", route_class=ConsoleRoute, include_in_schema=False, dependencies=[FormClosed]
)
for _page in (static, auth, dashboard, cases, history, approvals, operator, stats, account):
    router.include_router(_page.router)
router.include_router(tip_pages.router)  # the case page's tips panel
router.include_router(map_pages.router)  # map data and address lookup
router.include_router(reach_pages.router)  # a case's reach report
