"""Every route handler and controller the API serves, one line per bounded context."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from api.domains.bookings.routes import BookingController
from api.domains.catalog.routes import CatalogController, SearchController
from api.domains.cities.routes import CitiesController
from api.domains.couriers.routes import CourierAdminController, CourierController
from api.domains.delivery.routes import (
    CourierDeliveryController,
    CustomerDeliveryController,
    DispatchAdminController,
)
from api.domains.events.routes import WebhookController
from api.domains.identity.routes import AuthController, RoleAdminController
from api.domains.matching.routes import MatchController
from api.domains.merchants.routes import MerchantAdminController, MerchantController
from api.domains.orders.routes import OrderController
from api.domains.payments.admin_routes import (
    DisputeAdminController,
    FraudReviewController,
    PayoutAdminController,
)
from api.domains.payments.routes import PaymentIntentController, PaymentWebhookController
from api.domains.profiles.routes import AdminUsersController, MeController
from api.domains.wallet.routes import WalletController
from api.health import health, readiness
from api.metrics import metrics
from api.storage.routes import UploadController

ROUTE_HANDLERS: list[ControllerRouterHandler] = [
    health,
    readiness,
    metrics,
    AuthController,
    RoleAdminController,
    CitiesController,
    MeController,
    AdminUsersController,
    MerchantController,
    MerchantAdminController,
    CatalogController,
    SearchController,
    OrderController,
    BookingController,
    WebhookController,
    UploadController,
    PaymentIntentController,
    PaymentWebhookController,
    FraudReviewController,
    DisputeAdminController,
    PayoutAdminController,
    WalletController,
    CourierController,
    CourierAdminController,
    CourierDeliveryController,
    CustomerDeliveryController,
    DispatchAdminController,
    MatchController,
]
