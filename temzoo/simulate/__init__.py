"""Simulated, labelled HRTEM nanoparticle images (abTEM multislice + ASE structures).

``generate(SimulationConfig(...), out)`` writes a set; ``compute_exit_waves`` + ``image_from_exit_wave`` make single
images (the latter in milliseconds, for interactive teaching). Heavy imports (abTEM, ASE) happen inside functions.
"""

from temzoo.simulate.dataset import SimulationConfig, draw_conditions, example_exit_waves, field_spec, generate
from temzoo.simulate.imaging import Optics, apply_dose, expected_intensity, image_from_exit_wave
from temzoo.simulate.labels import mask_from_particle_wave
from temzoo.simulate.multislice import ExitWaves, compute_exit_waves
from temzoo.simulate.structures import MATERIALS, FieldSpec, ParticleSpec, build_field, random_field

__all__ = [
    "MATERIALS", "ExitWaves", "FieldSpec", "Optics", "ParticleSpec", "SimulationConfig", "apply_dose",
    "build_field", "compute_exit_waves", "draw_conditions", "example_exit_waves", "expected_intensity", "field_spec",
    "generate",
    "image_from_exit_wave", "mask_from_particle_wave", "random_field",
]
