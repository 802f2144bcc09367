# %% [markdown]
# # Compare green-dispatch policies in the simulator
# The green model predicts whether a low-emission courier (e-bike) would still meet the
# promise. Replaying "send an e-bike when P(on time) >= t" on the newest deliveries shows
# what each threshold buys (CO2e saved, via `nearx.emissions`) and costs (minutes of ETA,
# priced by the ETA champion). The green model's run logged the replay; here we redo it
# for more thresholds.

# %%
import mlflow
import polars as pl

from features.store import historical, open_store
from models import datasets, green
from models.frames import time_split
from models.tracking import CHAMPION, configure
from models.training import ETA_SERVICE, GREEN_SERVICE
from nearx.settings import load_settings
from pipelines.resources import lake_path
from pipelines.staging import staging_path

settings = load_settings()
configure(settings)
lake = lake_path(settings)
store = open_store(settings, lake / "features")
tables = {t: pl.scan_parquet(staging_path(lake, t)) for t in ("merchants", "orders", "deliveries")}
rows = datasets.eta_rows(tables)
test = time_split(historical(store, GREEN_SERVICE, rows), "event_timestamp").test
eta_inputs = historical(store, ETA_SERVICE, rows.join(test.select("order_id"), on="order_id", how="semi"))
green_model = mlflow.pyfunc.load_model(f"models:/nearx-green@{CHAMPION}").unwrap_python_model()
eta_model = mlflow.pyfunc.load_model(f"models:/nearx-eta@{CHAMPION}").unwrap_python_model()

# %%
policy = green.replay_policy(green_model, test, eta_model, eta_inputs, (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95))
print(policy)

# %% [markdown]
# Each row: the share of motorised orders switched to an e-bike, the CO2e that saves
# (kg and share of their emissions), and the mean ETA given up by the switched orders (s).
# Pick the threshold where the next step saves little CO2e for much more waiting.
