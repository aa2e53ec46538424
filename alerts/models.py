"""Imports every domain's tables so Alembic and tests see one complete metadata."""

from alerts.cases import models as case_models  # noqa: F401
from alerts.console import models as console_models  # noqa: F401
from alerts.dispatch import models as dispatch_models  # noqa: F401
from alerts.feeds import models as feed_models  # noqa: F401
from alerts.partners import models as partner_models  # noqa: F401
from alerts.reach import models as reach_models  # noqa: F401
from alerts.tips import models as tip_models  # noqa: F401
from alerts.users import models as user_models  # noqa: F401
from channels import models as channel_models  # noqa: F401
from geo.devices import models as device_models  # noqa: F401
from geo.rulesets import models as ruleset_models  # noqa: F401
from geo.waves import models as wave_models  # noqa: F401
from ops.platform.audit import models as audit_models  # noqa: F401
from ops.platform.db import Base

metadata = Base.metadata
