# %% [markdown]
# # Explore the marts
# The marts are plain DuckDB tables in `warehouse.duckdb` under `NEARX_HOME`:
# any DuckDB client reads them. Here: daily KPIs per city and CO2e by courier mode.

# %%
import duckdb

from nearx.settings import load_settings
from pipelines.resources import warehouse_path

settings = load_settings()
con = duckdb.connect(str(warehouse_path(settings)), read_only=True)
tables = [row[0] for row in con.sql("SHOW TABLES").fetchall()]
print(tables)
assert "daily_city" in tables

# %% [markdown]
# ## Daily city KPIs: orders, GMV, on-time and cancellation rates

# %%
daily = con.sql(
    "SELECT day, orders, gmv_minor, on_time_rate, cancellation_rate, fraud_rate FROM daily_city ORDER BY day"
).pl()
print(daily)
print("mean on-time rate:", round(daily["on_time_rate"].mean(), 3))

# %% [markdown]
# ## Sustainability: CO2e emitted and saved against an all-motorbike fleet, by mode

# %%
by_mode = con.sql(
    """
    SELECT mode, sum(deliveries) AS deliveries, round(sum(co2e_kg), 1) AS co2e_kg,
           round(sum(co2e_saved_kg), 1) AS co2e_saved_kg
    FROM sustainability_daily GROUP BY mode ORDER BY co2e_saved_kg DESC
    """
).pl()
print(by_mode)
con.close()
