"""Atomic models of a simulated field: nanoparticles (ASE) on amorphous carbon.

A field is described by plain, JSON-serialisable dataclasses (:class:`FieldSpec`, :class:`ParticleSpec`), drawn from
a seeded random generator by :func:`random_field`; :func:`build_field` turns a spec into ASE ``Atoms``. The spec (not
the atoms) is what the exit-wave cache is keyed on, so the same spec always means the same structure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from temzoo.errors import DataError


@dataclass(frozen=True)
class Material:
    """A crystal the simulator can build. ``kind``: fcc (one species), zincblende or wurtzite (binary)."""

    name: str
    kind: str
    symbols: tuple[str, ...]
    a: float  # lattice constant [A] (cubic a, or hexagonal a for wurtzite)
    c: float | None = None  # wurtzite c [A]
    wulff: bool = False  # fcc metals: Wulff-shaped (faceted) when there is no stacking fault

    @property
    def layer_a(self) -> float:
        """In-plane spacing of the close-packed (111)/(0001) layers [A]."""
        return self.a if self.kind == "wurtzite" else self.a / math.sqrt(2)

    @property
    def layer_d(self) -> float:
        """Spacing between successive close-packed layers [A]."""
        return self.c / 2 if self.kind == "wurtzite" else self.a / math.sqrt(3)

    @property
    def anion_offset(self) -> float:
        """Shift of the anion above the cation of the same layer along the stacking axis [A] (u = 3/8)."""
        return 0.375 * self.c if self.kind == "wurtzite" else self.a * math.sqrt(3) / 4


MATERIALS: dict[str, Material] = {
    "Au": Material("Au", "fcc", ("Au",), 4.078, wulff=True),
    "Pt": Material("Pt", "fcc", ("Pt",), 3.924, wulff=True),
    "Ag": Material("Ag", "fcc", ("Ag",), 4.086, wulff=True),
    "CdSe": Material("CdSe", "wurtzite", ("Cd", "Se"), 4.30, 7.01),
    "CdSe-zb": Material("CdSe-zb", "zincblende", ("Cd", "Se"), 6.05),
    "ZnS": Material("ZnS", "zincblende", ("Zn", "S"), 5.41),
    "ZnS-wz": Material("ZnS-wz", "wurtzite", ("Zn", "S"), 3.82, 6.26),
}
DEFAULT_MATERIALS = ("Au", "Pt", "Ag", "CdSe", "ZnS")


def material(name: str) -> Material:
    try:
        return MATERIALS[name]
    except KeyError:
        raise DataError(f"unknown material {name!r}; choose from {', '.join(MATERIALS)}") from None


@dataclass
class ParticleSpec:
    material: str
    diameter_nm: float
    center_nm: tuple[float, float]  # in-plane position of the centre in the field
    rotation: tuple[float, float, float, float]  # unit quaternion (x, y, z, w), uniform on SO(3)
    stacking_faults: int = 0


@dataclass
class FieldSpec:
    """Everything that decides the atoms of one field (the exit-wave cache key is a hash of this)."""

    extent_nm: float
    carbon_thickness_nm: float
    particles: list[ParticleSpec] = field(default_factory=list)
    seed: int = 0  # carbon atoms and thermal displacements

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FieldSpec:
        parts = [ParticleSpec(**{**p, "center_nm": tuple(p["center_nm"]), "rotation": tuple(p["rotation"])})
                 for p in d.get("particles", [])]
        return cls(extent_nm=d["extent_nm"], carbon_thickness_nm=d["carbon_thickness_nm"], particles=parts,
                   seed=int(d.get("seed", 0)))


def random_field(rng: np.random.Generator, extent_nm: float, *, materials=DEFAULT_MATERIALS,
                 n_particles: tuple[int, int] = (1, 5), diameter_nm: tuple[float, float] = (2.0, 10.0),
                 carbon_nm: tuple[float, float] = (2.0, 8.0), max_stacking_faults: int = 1) -> FieldSpec:
    """Draw a field: 1-5 particles of the given materials, non-overlapping in projection, on carbon."""
    for m in materials:
        material(m)
    n = int(rng.integers(n_particles[0], n_particles[1] + 1))
    margin = 0.3  # nm between particles and from the edge (the cell is periodic)
    d_max = min(diameter_nm[1], 0.8 * extent_nm)
    d_min = min(diameter_nm[0], d_max)
    parts: list[ParticleSpec] = []
    for _ in range(n):
        for _try in range(30):
            d = float(rng.uniform(d_min, d_max))
            r = d / 2
            lo, hi = r + margin, extent_nm - r - margin
            if hi <= lo:
                continue
            c = (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
            if all(math.dist(c, p.center_nm) > r + p.diameter_nm / 2 + margin for p in parts):
                q = rng.normal(size=4)
                q /= np.linalg.norm(q)
                faults = int(rng.integers(0, max_stacking_faults + 1)) if max_stacking_faults > 0 else 0
                center = (round(c[0], 3), round(c[1], 3))
                parts.append(ParticleSpec(str(rng.choice(list(materials))), round(d, 3), center,
                                          tuple(float(round(x, 6)) for x in q), faults))
                break
    carbon = float(rng.uniform(*carbon_nm)) if carbon_nm[1] > 0 else 0.0
    return FieldSpec(extent_nm=float(extent_nm), carbon_thickness_nm=round(carbon, 3), particles=parts,
                     seed=int(rng.integers(0, 2**31 - 1)))


def stacking_sequence(kind: str, n_layers: int, faults: int, rng: np.random.Generator) -> list[int]:
    """Close-packed layer sites (0=A, 1=B, 2=C): ABC.. for fcc/zinc blende, AB.. for wurtzite, with faults.

    A fault in fcc reverses the stacking direction (a twin plane); in wurtzite it puts one layer on the third site
    (ABAB|CBCB: a cubic ABC triple), the basal-plane faults seen in CdSe particles.
    """
    fault_at = set(rng.choice(np.arange(2, max(3, n_layers - 1)), size=min(faults, max(0, n_layers - 3)),
                              replace=False).tolist()) if faults and n_layers > 4 else set()
    seq = [0, 1]
    direction = 1
    while len(seq) < n_layers:
        i = len(seq)
        if kind == "wurtzite":
            nxt = 3 - seq[-1] - seq[-2] if i in fault_at else seq[-2]
        else:
            if i in fault_at:
                direction = -direction
            nxt = (seq[-1] + direction) % 3
        seq.append(nxt)
    return seq[:n_layers]


def _rotation(q) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.asarray(q, dtype=float)).as_matrix()


def _layered_sphere(mat: Material, radius: float, faults: int, rng: np.random.Generator):
    """A sphere cut from a stack of close-packed layers (stacking axis = z before rotation)."""
    from ase import Atoms

    a, d = mat.layer_a, mat.layer_d
    n_layers = int(math.ceil(2 * radius / d)) + 3
    seq = stacking_sequence(mat.kind, n_layers, faults, rng)
    a1 = np.array([a, 0.0])
    a2 = np.array([a / 2, a * math.sqrt(3) / 2])
    site = [np.zeros(2), (a1 + a2) / 3, 2 * (a1 + a2) / 3]
    m = int(math.ceil(2 * radius / a)) + 3
    i, j = np.meshgrid(np.arange(-m, m + 1), np.arange(-m, m + 1), indexing="ij")
    grid = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    z0 = (n_layers - 1) * d / 2
    pos, sym = [], []
    for k, s in enumerate(seq):
        xy = grid + site[s]
        z = k * d - z0
        pos.append(np.c_[xy, np.full(len(xy), z)])
        sym += [mat.symbols[0]] * len(xy)
        if len(mat.symbols) > 1:
            pos.append(np.c_[xy, np.full(len(xy), z + mat.anion_offset)])
            sym += [mat.symbols[1]] * len(xy)
    pos = np.concatenate(pos)
    pos -= pos.mean(axis=0)
    keep = np.linalg.norm(pos, axis=1) <= radius
    return Atoms([s for s, k in zip(sym, keep) if k], positions=pos[keep])


def build_particle(p: ParticleSpec, rng: np.random.Generator):
    """ASE atoms of one particle, centred at the origin and rotated as the spec says."""
    mat = material(p.material)
    radius = p.diameter_nm * 10 / 2
    if mat.wulff and p.stacking_faults == 0:
        from ase.cluster import wulff_construction

        # atoms in a sphere of this diameter: 4 per cubic cell
        n_atoms = max(13, int(4 * (4 / 3) * math.pi * radius**3 / mat.a**3))
        atoms = wulff_construction(mat.symbols[0], [(1, 0, 0), (1, 1, 0), (1, 1, 1)], [1.0, 1.1, 0.9], n_atoms,
                                   "fcc", rounding="closest", latticeconstant=mat.a)
    else:
        atoms = _layered_sphere(mat, radius, p.stacking_faults, rng)
    pos = atoms.positions - atoms.positions.mean(axis=0)
    atoms.positions = pos @ _rotation(p.rotation).T
    return atoms


def amorphous_carbon(extent_A: float, thickness_A: float, rng: np.random.Generator, density_g_cm3: float = 2.0):
    """Random carbon atoms in a slab (uniform positions; in projection through nm of it this gives the speckle
    of amorphous carbon, and it costs nothing to build)."""
    from ase import Atoms

    n = int(density_g_cm3 / 12.011 * 6.022e23 * 1e-24 * extent_A**2 * thickness_A)
    if n == 0:
        return Atoms()
    pos = rng.uniform([0, 0, 0], [extent_A, extent_A, thickness_A], size=(n, 3))
    return Atoms(numbers=np.full(n, 6), positions=pos)


def build_field(spec: FieldSpec, thermal_sigma_A: float = 0.08):
    """``(field, particles)``: all atoms (particles on carbon) and the particles alone, in the same periodic cell.

    Atom positions get a Gaussian thermal displacement (one frozen-phonon configuration).
    """
    from ase import Atoms

    rng = np.random.default_rng(spec.seed)
    L = spec.extent_nm * 10
    t = spec.carbon_thickness_nm * 10
    carbon = amorphous_carbon(L, t, rng)
    particles = Atoms()
    for p in spec.particles:
        a = build_particle(p, rng)
        a.positions += [p.center_nm[0] * 10, p.center_nm[1] * 10, 0.0]
        particles += a
    if len(particles):
        particles.positions[:, 2] += t + 1.5 - particles.positions[:, 2].min()  # resting on the carbon
        particles.positions += rng.normal(scale=thermal_sigma_A, size=particles.positions.shape)
    top = float(particles.positions[:, 2].max()) if len(particles) else t
    height = top + 2.0
    full = carbon + particles
    full.set_cell([L, L, max(height, 2.0)])
    full.pbc = True
    alone = particles.copy()
    if len(alone):  # no empty slices above the carbon gap: the particle-in-vacuum run only needs the particle
        alone.positions[:, 2] -= alone.positions[:, 2].min() - 1.0
    alone.set_cell([L, L, float(alone.positions[:, 2].max()) + 2.0 if len(alone) else 2.0])
    alone.pbc = True
    return full, alone
