# %% [markdown]
# # Diagnose a model from its MLflow run
# Loads the `champion` of a registered model (default `nearx-eta`, or `NEARX_NOTEBOOK_MODEL`),
# shows its run's metrics beside the baselines measured in the same run, the gate's
# decision, the logged plots, and where the errors concentrate.

# %%
import os

import mlflow

from models.tracking import CHAMPION, configure
from nearx.settings import load_settings

settings = load_settings()
client = configure(settings)
name = os.environ.get("NEARX_NOTEBOOK_MODEL", "nearx-eta")
version = client.get_model_version_by_alias(name, CHAMPION)
run = client.get_run(version.run_id)
print(f"{name} v{version.version} (champion), run {run.info.run_id}")
print("feature service:", run.data.tags.get("feature_service"), "| data:", run.data.tags.get("data_version"))
print("gate:", run.data.tags.get("gate.decision"))

# %% [markdown]
# ## Metrics and their baselines

# %%
metrics = run.data.metrics
for key in sorted(metrics):
    print(f"{key:45s} {metrics[key]:,.4f}")

# %% [markdown]
# ## Plots logged with the run

# %%
artifacts = [a.path for a in client.list_artifacts(run.info.run_id) if a.path.endswith(".png")]
print(artifacts)
local = [mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=p) for p in artifacts]
print(local)

# %% [markdown]
# ## The registered pyfunc: its signature is the serving contract

# %%
model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
print(model.metadata.get_input_schema())
print(model.metadata.get_output_schema())
