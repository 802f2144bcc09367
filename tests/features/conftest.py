from pathlib import Path

import pytest
from feast import FeatureStore

from features.store import apply_repo, open_store
from tests.small_city import SmallCity, build_small_city


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> SmallCity:
    return build_small_city(Path(tmp_path_factory.mktemp("city")))


@pytest.fixture(scope="module")
def store(city: SmallCity) -> FeatureStore:
    feature_store = open_store(city.settings, city.features_dir, online="sqlite")
    apply_repo(feature_store)
    return feature_store
