"""Feast entities: who or what a feature describes. Join keys match the lake's column names."""

from feast import Entity, ValueType

merchant = Entity(
    name="merchant", join_keys=["merchant_id"], value_type=ValueType.STRING, description="A merchant."
)
courier = Entity(
    name="courier", join_keys=["courier_id"], value_type=ValueType.STRING, description="A courier."
)
customer = Entity(
    name="customer", join_keys=["customer_id"], value_type=ValueType.STRING, description="A customer."
)
cell_hour = Entity(
    name="cell_hour",
    join_keys=["cell_hour"],
    value_type=ValueType.STRING,
    description="An H3 resolution-7 cell at a local hour of day, keyed '<h3_r7>@HH'.",
)
merchant_hour = Entity(
    name="merchant_hour",
    join_keys=["merchant_hour"],
    value_type=ValueType.STRING,
    description="A merchant at a local hour of day, keyed '<merchant_id>@HH'.",
)

ENTITIES = [merchant, courier, customer, cell_hour, merchant_hour]
