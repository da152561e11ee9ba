"""Settings read from the environment (prefix ``WANGGE_``), one class per concern."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """Where the PostGIS database is.

    With ``WANGGE_DATABASE_URL`` unset, wangge runs its own private cluster under
    ``WANGGE_HOME`` (default ``./.wangge``).
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_", extra="ignore")

    database_url: str | None = None
    home: Path = Path(".wangge")
    # Port of the embedded cluster; 0 picks a free one at first start and remembers it.
    db_port: int = Field(default=0, ge=0, le=65535)
    pool_size: int = Field(default=10, ge=1)


class ApiSettings(BaseSettings):
    """How the map API is served."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    # Upper bound on features one /layers request may return.
    layer_limit_max: int = Field(default=10_000, ge=1)
    layer_limit_default: int = Field(default=2_000, ge=1)
    # Bearer tokens required on every non-public route (WANGGE_AUTH_REQUIRED=false: development).
    auth_required: bool = True
    # A checked token is trusted this long (s) in-process; revocation applies within it. 0: off.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # Largest request body in bytes (413 beyond; batch imports have their own cap).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)


class EstimateSettings(BaseSettings):
    """Defaults of the stairwell and household estimate for buildings without real counts.

    Census 2020 (China): 2.62 persons per household, 18.7 % aged 60 or over.
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_ESTIMATE_", extra="ignore")

    seed: int = 20_260_101
    unit_width_m: float = Field(default=14.0, gt=0)
    default_levels: int = Field(default=6, ge=1)
    households_per_floor: int = Field(default=2, ge=1)
    persons_per_household: float = Field(default=2.62, gt=0)
    elderly_share: float = Field(default=0.187, ge=0, le=1)
    # Footprints smaller than this are sheds, kiosks or garages, not homes.
    min_footprint_m2: float = Field(default=60.0, ge=0)


class CaseSettings(BaseSettings):
    """Defaults of case reporting and batch import (``WANGGE_CASES_*``)."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_CASES_", extra="ignore")

    # A point closer than this to another grid is assigned but flagged for confirmation.
    near_boundary_m: float = Field(default=10.0, ge=0)
    # Open cases of the same small class within this radius and window are possible duplicates.
    duplicate_radius_m: float = Field(default=100.0, ge=0)
    duplicate_window_days: float = Field(default=7.0, ge=0)
    # Nearest stairwell searched within this distance.
    stairwell_search_m: float = Field(default=1_000.0, ge=0)
    # Batch import: rows per committed chunk, most rows and bytes one batch may carry.
    batch_chunk_rows: int = Field(default=200_000, ge=1)
    batch_max_rows: int = Field(default=2_000_000, ge=1)
    batch_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1)


class GridSettings(BaseSettings):
    """Defaults of grid generation and validation (DOMAIN §1; vary by city).

    Service cells hold a few hundred households (typically 300-500); unit cells are the
    10,000 m² "万米单元网格".
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_GRID_", extra="ignore")

    target_households: int = Field(default=400, ge=1)
    target_area_m2: float = Field(default=10_000.0, gt=0)
    # Accepted relative deviation from the target before a cell is split or merged.
    size_tolerance: float = Field(default=0.25, ge=0, lt=1)
    # Overlaps, gaps and building parts at or below this area are rounding noise (m²).
    tolerance_m2: float = Field(default=1.0, ge=0)
    # Smallest derived community (m²).
    min_community_m2: float = Field(default=100_000.0, gt=0)
