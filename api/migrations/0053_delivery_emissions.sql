-- Emissions of completed deliveries with who they belong to: one row per delivered order, the
-- source the sustainability mart extracts incrementally (by delivered_at) and incentives sum per
-- courier, merchant, customer or city.

CREATE VIEW delivery_emissions AS
SELECT d.id AS delivery_id,
       d.city_id,
       d.courier_id,
       mo.merchant_id,
       mo.customer_id,
       d.mode,
       d.distance_m,
       d.kg_co2e,
       d.baseline_kg_co2e,
       d.baseline_kg_co2e - d.kg_co2e AS saving_kg_co2e,
       d.updated_at AS delivered_at
FROM deliveries d
JOIN merchant_orders mo ON mo.id = d.merchant_order_id
WHERE d.status = 'delivered';
