"""Procedural music in stems: a sung "voice" against chords, a bass line and drums, in pure NumPy.

Why it exists: the demo recipe and the tests need separation data on a machine with nothing
downloaded. Each item is drawn from its own seeded generator, so an item depends only on
``(seed, domain, split, index)`` and the sample rate and duration: the same inputs give
bit-identical samples, and splits never share items.

The voice is harmonic (a melody of notes with glides, delayed vibrato and note attacks), its harmonic
amplitudes shaped by vowel formants (Gaussian bumps in frequency, one vowel per note), sung in
phrases separated by silence. The accompaniment is chords (a sustained pad or plucked tones, with a
bass line; no vibrato, no formants) plus drums on a beat grid (kick: a decaying sine with a falling
pitch; snare and hi-hat: decaying noise bursts). Two "domains" differ in pitch range, vibrato,
vowel colour, tempo, chord timbre and drum pattern, for the semi-supervised setting (paired data from
one domain, unpaired and test data from the other).

Stems: ``drums`` (the percussion), ``bass`` (the plucked bass line), ``other`` (the chords),
``vocals``, and ``accompaniment``, the sum of the first three. Samples are returned on the 16-bit
grid (integers / 32768) with ``mixture == vocals + accompaniment`` and ``accompaniment == drums +
bass + other`` exactly, so that 16-bit WAV files keep both identities whatever float type reads
them back. ``vocals``, ``accompaniment``, ``drums`` and ``bass`` are each rounded to the grid and
``other`` is the remainder, so that the two-source items (vocals, accompaniment, mixture) are
bit-identical to those of generator version 1, which had no separate stems.

Stereo (``channels=2``): each source is panned (constant power) to a position drawn per item and
given a little width (a delayed copy of itself added to one channel and subtracted from the other:
side-channel ambience, as a mid/side widener adds it); the placement is drawn from a generator of its own, so the mono
draws, and so the music, are the same in mono and stereo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Bump this when the generated audio or the files of a split change: it is part of the cache key.
#: Version 2 added the drums, bass and other stems and stereo; its mono vocals, accompaniment and
#: mixture are bit-identical to version 1's. Version 3 lengthened the stereo width's delay (mono
#: unchanged).
GENERATOR_VERSION = 3

#: The sources an item holds, in the MUSDB18 order, and the sum of the first three.
INSTRUMENTS: tuple[str, ...] = ("drums", "bass", "other")
SOURCES: tuple[str, ...] = (*INSTRUMENTS, "vocals", "accompaniment")

#: Which items each split holds; the index is part of every item's seed (new splits go at the end,
#: so that the older ones keep their seeds).
SPLITS: tuple[str, ...] = ("train", "validation", "test", "mixtures", "vocals", "accompaniment", "drums", "bass", "other")

#: Range of the vocal-to-accompaniment ratio (dB, RMS over the whole item).
VOCAL_TO_ACCOMPANIMENT_DB = (-3.0, 6.0)
#: Range of the mixture's peak (linear); always below 0.9 after quantisation.
MIXTURE_PEAK = (0.6, 0.88)

PCM_SCALE = 32768.0
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_NATURAL_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
#: (F1, F2, F3) in Hz of five vowels (averages for an adult voice).
_VOWELS = np.array(
    [[800.0, 1150.0, 2900.0], [400.0, 2000.0, 2550.0], [300.0, 2300.0, 3000.0], [450.0, 800.0, 2830.0], [325.0, 700.0, 2530.0]]
)
_VOWEL_NAMES = ("a", "e", "i", "o", "u")
_FORMANT_WIDTHS = np.array([90.0, 120.0, 160.0])  # Gaussian standard deviations (Hz)
_FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 4, 5, 3), (0, 3, 0, 4))


@dataclass(frozen=True)
class DomainProfile:
    """What distinguishes one domain's music from the other's."""

    name: str
    voice_midi: tuple[int, int]  # lowest and highest sung note (MIDI numbers)
    vibrato_hz: tuple[float, float]
    vibrato_semitones: tuple[float, float]  # peak pitch deviation of the vibrato
    formant_scale: float  # multiplies every vowel formant frequency
    voice_tilt: float  # harmonic k has amplitude k ** -voice_tilt before the formants
    tempo_bpm: tuple[float, float]
    chord_midi: int  # chord roots lie an octave above this note at most
    chord_style: str  # "pad" (sustained through the bar) or "pluck" (struck on every beat, decaying)
    hihats_per_beat: int
    kick_beats: tuple[int, ...]  # beats of a 4/4 bar that have a kick
    snare_beats: tuple[int, ...]

    @property
    def voice_hz(self) -> tuple[float, float]:
        """The lowest and highest fundamental the voice can reach, vibrato included."""
        low, high = self.voice_midi
        depth = self.vibrato_semitones[1]
        return midi_to_hz(low - depth), midi_to_hz(high + depth)


DOMAINS: dict[str, DomainProfile] = {
    "a": DomainProfile(
        name="a",
        voice_midi=(48, 67),  # C3-G4, about 131-392 Hz
        vibrato_hz=(5.0, 5.6),
        vibrato_semitones=(0.25, 0.45),
        formant_scale=1.0,
        voice_tilt=1.0,
        tempo_bpm=(84.0, 104.0),
        chord_midi=48,
        chord_style="pad",
        hihats_per_beat=2,
        kick_beats=(0, 2),
        snare_beats=(1, 3),
    ),
    "b": DomainProfile(
        name="b",
        voice_midi=(60, 79),  # C4-G5, about 262-784 Hz
        vibrato_hz=(5.6, 6.4),
        vibrato_semitones=(0.4, 0.7),
        formant_scale=1.15,
        voice_tilt=0.7,
        tempo_bpm=(116.0, 140.0),
        chord_midi=55,
        chord_style="pluck",
        hihats_per_beat=4,
        kick_beats=(0, 1, 2, 3),
        snare_beats=(1, 3),
    ),
}


@dataclass(frozen=True)
class Note:
    """One sung note: seconds, MIDI pitch (before vibrato) and vowel."""

    start: float
    end: float
    midi: int
    vowel: str


#: Stereo placement per source: the range of the pan position's magnitude (0 centre, 1 hard left or
#: right; the side is drawn too) and the width (gain of the delayed copy in the side channel).
STEREO_PLACEMENT: dict[str, tuple[tuple[float, float], float]] = {
    "vocals": ((0.0, 0.1), 0.05),
    "bass": ((0.0, 0.05), 0.0),
    "drums": ((0.0, 0.25), 0.15),
    "other": ((0.3, 0.7), 0.3),
}
#: Delay of the widening copy (seconds), and at least WIDTH_MIN_DELAY samples: longer than BSS Eval
#: v4's 512-tap distortion filters at every rate, so that one channel of a source is not a short
#: filter of the other. With a shorter delay museval's image projections are ill-conditioned and a
#: near-perfect stereo estimate scores an ISR and SIR some 20 dB too low (tests/test_synthetic.py).
#: The copy is in the side channel only, so the mono downmix never hears it as an echo.
WIDTH_DELAY_SECONDS = (0.07, 0.1)
WIDTH_MIN_DELAY = 600


@dataclass
class GeneratedItem:
    """One item: float32 stems on the 16-bit grid (``[L]`` mono, ``[2, L]`` stereo), and what was
    drawn to make them."""

    vocals: np.ndarray
    accompaniment: np.ndarray
    mixture: np.ndarray
    drums: np.ndarray
    bass: np.ndarray
    other: np.ndarray
    notes: list[Note]
    drum_onsets: dict[str, np.ndarray]  # drum name -> onset sample indices
    metadata: dict[str, str] = field(default_factory=dict)


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def item_rng(seed: int, domain: str, split: str, index: int, stream: int | None = None) -> np.random.Generator:
    """The generator of one item: independent streams for every (seed, domain, split, index), and
    for each ``stream`` of it (1: the stereo placement; ``None``: the music)."""
    key = (sorted(DOMAINS).index(domain), SPLITS.index(split), index) + (() if stream is None else (stream,))
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def generate_item(
    *, seed: int, domain: str, split: str, index: int, seconds: float, sample_rate: int, channels: int = 1
) -> GeneratedItem:
    """Draw one item; the same arguments always give the same samples."""
    # Long on purpose: the order of the rng draws below is the generated corpus's identity (a
    # reordering changes every item), so it stays one readable sequence rather than scattered parts.
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    profile = DOMAINS[domain]
    rng = item_rng(seed, domain, split, index)
    length = int(round(seconds * sample_rate))
    tempo = float(rng.uniform(*profile.tempo_bpm))
    beat = 60.0 / tempo
    key_root = int(rng.integers(0, 12))
    minor = bool(rng.random() < 0.4)
    scale = _NATURAL_MINOR if minor else _MAJOR

    notes = draw_melody(rng, profile, scale, key_root, beat, seconds)
    vocals = synth_voice(rng, profile, notes, length, sample_rate)
    chords, bass = synth_chords(rng, profile, scale, key_root, beat, length, sample_rate)
    drums, onsets = synth_drums(rng, profile, beat, length, sample_rate)
    drums *= _rms(chords) / max(_rms(drums), 1e-12) * 10.0 ** (rng.uniform(-2.0, 2.0) / 20.0)
    accompaniment = chords + drums  # chords holds the bass: the same sum as version 1's
    placement: dict[str, str] = {}
    if channels == 2:
        stereo = item_rng(seed, domain, split, index, stream=1)
        other = chords - bass
        drums, bass, other, vocals = (
            _place(stereo, source, signal, sample_rate, placement)
            for source, signal in (("drums", drums), ("bass", bass), ("other", other), ("vocals", vocals))
        )
        accompaniment = drums + bass + other

    ratio_db = float(rng.uniform(*VOCAL_TO_ACCOMPANIMENT_DB))
    vocals *= _rms(accompaniment) / max(_rms(vocals), 1e-12) * 10.0 ** (ratio_db / 20.0)
    peak = float(rng.uniform(*MIXTURE_PEAK))
    gain = peak / max(float(np.max(np.abs(vocals + accompaniment))), 1e-12)
    vocals_q = np.round(vocals * gain * PCM_SCALE)
    accompaniment_q = np.round(accompaniment * gain * PCM_SCALE)
    mixture_q = vocals_q + accompaniment_q  # exact: integers well inside float64's range
    drums_q = np.round(drums * gain * PCM_SCALE)
    bass_q = np.round(bass * gain * PCM_SCALE)
    other_q = accompaniment_q - drums_q - bass_q  # the remainder: the three sum to the accompaniment exactly

    key_name = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"][key_root]
    metadata = {
        "domain": domain,
        "split": split,
        "index": str(index),
        "tempo_bpm": f"{tempo:.2f}",
        "key": f"{key_name} {'minor' if minor else 'major'}",
        "vocal_to_accompaniment_db": f"{ratio_db:.2f}",
        "mixture_peak": f"{np.max(np.abs(mixture_q)) / PCM_SCALE:.4f}",
        **placement,
    }

    def grid(samples: np.ndarray) -> np.ndarray:
        return (samples / PCM_SCALE).astype(np.float32)

    return GeneratedItem(
        vocals=grid(vocals_q),
        accompaniment=grid(accompaniment_q),
        mixture=grid(mixture_q),
        drums=grid(drums_q),
        bass=grid(bass_q),
        other=grid(other_q),
        notes=notes,
        drum_onsets=onsets,
        metadata=metadata,
    )


def _place(
    rng: np.random.Generator, source: str, signal: np.ndarray, sample_rate: int, metadata: dict[str, str]
) -> np.ndarray:
    """``[2, L]``: a mono source panned (constant power) and widened, as drawn for ``source``."""
    (low, high), width = STEREO_PLACEMENT[source]
    pan = float(rng.uniform(low, high)) * (1.0 if rng.random() < 0.5 else -1.0)  # -1 left .. +1 right
    delay = max(int(round(float(rng.uniform(*WIDTH_DELAY_SECONDS)) * sample_rate)), WIDTH_MIN_DELAY)
    angle = 0.25 * np.pi * (pan + 1.0)
    side = np.zeros_like(signal)
    side[delay:] = width * signal[: len(signal) - delay]
    metadata[f"pan_{source}"] = f"{pan:+.3f}"
    metadata[f"width_{source}"] = f"{width:.2f}"
    return np.stack([np.cos(angle) * signal + side, np.sin(angle) * signal - side])


def draw_melody(
    rng: np.random.Generator, profile: DomainProfile, scale: np.ndarray, key_root: int, beat: float, seconds: float
) -> list[Note]:
    """Phrases of 3-7 notes on the key's scale (a bounded random walk), separated by rests."""
    low, high = profile.voice_midi
    pitches = np.array([m for m in range(low, high + 1) if (m - key_root) % 12 in scale])
    notes: list[Note] = []
    # The first phrase starts early, so that even a short item has voice.
    t = float(rng.uniform(0.0, min(2.0 * beat, 0.25 * seconds)))
    while t < seconds - 0.25:
        position = int(rng.integers(2, len(pitches) - 2))
        for _ in range(int(rng.integers(3, 8))):
            duration = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])) * beat
            end = min(t + duration, seconds)
            if end - t < 0.15:
                break
            notes.append(Note(t, end, int(pitches[position]), _VOWEL_NAMES[int(rng.integers(0, len(_VOWELS)))]))
            t = end
            step = int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]))
            position = int(np.clip(position + step, 0, len(pitches) - 1))
        t += float(rng.choice([1.0, 1.5, 2.0, 3.0])) * beat
    return notes


def synth_voice(
    rng: np.random.Generator, profile: DomainProfile, notes: list[Note], length: int, sample_rate: int
) -> np.ndarray:
    """Sing the notes: glided pitch with delayed vibrato, vowel formants, per-note attack and release."""
    midi = np.zeros(length)
    depth = np.zeros(length)  # vibrato depth in semitones, rising after each note's onset
    envelope = np.zeros(length)
    formants = np.zeros((3, length))
    time = np.arange(length) / sample_rate
    vibrato_depth = float(rng.uniform(*profile.vibrato_semitones))
    previous_end = 0
    for note in notes:
        start, end = int(note.start * sample_rate), min(int(note.end * sample_rate), length)
        if end <= start:
            continue
        vowel = (_VOWELS[_VOWEL_NAMES.index(note.vowel)] * profile.formant_scale)[:, None]
        # Hold the previous pitch and vowel through a rest, so the glide starts from the last note.
        midi[previous_end:start] = midi[previous_end - 1] if previous_end else note.midi
        formants[:, previous_end:start] = formants[:, previous_end - 1 : previous_end] if previous_end else vowel
        midi[start:end] = note.midi
        formants[:, start:end] = vowel
        since = time[start:end] - note.start
        until = note.end - time[start:end]
        depth[start:end] = vibrato_depth * np.clip((since - 0.15) / 0.2, 0.0, 1.0)
        attack = np.clip(since / float(rng.uniform(0.02, 0.05)), 0.0, 1.0)
        release = np.clip(until / 0.04, 0.0, 1.0)
        decay = 1.0 - 0.25 * np.clip(since / 1.5, 0.0, 1.0)
        envelope[start:end] = float(rng.uniform(0.7, 1.0)) * np.sin(0.5 * np.pi * attack) * release * decay
        previous_end = end
    if previous_end and previous_end < length:
        midi[previous_end:] = midi[previous_end - 1]
        formants[:, previous_end:] = formants[:, previous_end - 1 : previous_end]
    if not notes:
        return np.zeros(length)
    midi = _moving_average(midi, int(0.04 * sample_rate))  # portamento between notes
    formants = np.stack([_moving_average(f, int(0.05 * sample_rate)) for f in formants])
    rate = float(rng.uniform(*profile.vibrato_hz))
    vibrato = depth * np.sin(2 * np.pi * rate * time + rng.uniform(0, 2 * np.pi))
    f0 = midi_to_hz(midi + vibrato)
    phase = np.mod(2 * np.pi * np.cumsum(f0) / sample_rate, 2 * np.pi)
    harmonics = int(min(40, np.floor(0.45 * sample_rate / f0.min())))
    # Harmonic amplitudes change slowly: compute them every ~4 ms, interpolate linearly.
    hop = max(1, sample_rate // 256)
    control = np.minimum(np.arange(0, length + hop, hop), length - 1)
    k = np.arange(1, harmonics + 1, dtype=np.float64)[:, None]
    freq = k * f0[None, control]  # [K, M]
    shape = 0.05 + np.einsum(
        "j,jkm->km",
        _FORMANT_GAINS,
        np.exp(-0.5 * ((freq[None] - formants[:, None, control]) / _FORMANT_WIDTHS[:, None, None]) ** 2),
    )
    amplitude = (shape * k**-profile.voice_tilt * _below_nyquist(freq, sample_rate)).astype(np.float32)
    ramp = (np.arange(hop) / hop).astype(np.float32)
    slope = np.diff(amplitude, axis=1)

    def interpolated(i: int) -> np.ndarray:
        return (amplitude[i, :-1, None] + slope[i, :, None] * ramp).ravel()[:length]

    return envelope * _sum_harmonics(phase, interpolated, harmonics)


def _sum_harmonics(
    phase: np.ndarray,
    amplitude: Callable[[int], np.ndarray | float],
    harmonics: int,
    damping: np.ndarray | None = None,
) -> np.ndarray:
    """sum_k amplitude(k - 1) * r**k * sin(k * phase) for k = 1..harmonics (r = damping, or 1).

    By the recurrence u_k = 2 r cos(x) u_(k-1) - r**2 u_(k-2) for u_k = r**k sin(k x): two
    multiply-adds per partial instead of a sine (and a power), one row of samples at a time, so
    memory stays O(samples). In float32 (twice as fast; the error, about 1e-5 of the peak for 40
    partials, is below the 16-bit grid the samples are rounded to); ``phase`` should lie in [0, 2 pi).
    """
    phase = phase.astype(np.float32)
    twice_cos = 2.0 * np.cos(phase)
    current = np.sin(phase)
    if damping is not None:
        damping = damping.astype(np.float32)
        twice_cos *= damping
        current *= damping
        r_squared = damping * damping
    previous = np.zeros_like(phase)
    out = np.asarray(amplitude(0), dtype=np.float32) * current
    scratch = np.empty_like(phase)
    for i in range(1, harmonics):
        if damping is not None:
            previous *= r_squared
        np.multiply(twice_cos, current, out=scratch)
        np.subtract(scratch, previous, out=previous)  # previous now holds u_(i+1)
        previous, current = current, previous
        gain = amplitude(i)
        if np.ndim(gain):
            np.multiply(gain, current, out=scratch)
            out += scratch
        else:
            out += np.float32(gain) * current
    return out


def synth_chords(
    rng: np.random.Generator,
    profile: DomainProfile,
    scale: np.ndarray,
    key_root: int,
    beat: float,
    length: int,
    sample_rate: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A four-bar progression of triads plus a bass note, as a pad or as plucked tones: the chords
    with their bass notes (summed as version 1 summed them, so its audio is unchanged), and the bass
    notes alone."""
    progression = _PROGRESSIONS[int(rng.integers(0, len(_PROGRESSIONS)))]
    bar = 4 * beat
    out = np.zeros(length)
    bass_line = np.zeros(length)
    base = profile.chord_midi + key_root
    brightness = float(rng.uniform(1.2, 1.8))  # harmonic k has amplitude k ** -brightness
    for bar_index in range(int(np.ceil(length / sample_rate / bar))):
        degree = progression[bar_index % len(progression)]
        tones = np.array([base + _scale_step(scale, degree + step) for step in (0, 2, 4)], dtype=np.float64)
        bass = base - 12 + _scale_step(scale, degree)
        if profile.chord_style == "pad":
            strikes = [(bar_index * bar, bar)]
        else:
            strikes = [(bar_index * bar + b * beat, beat) for b in range(4)]
        for onset, duration in strikes:
            start = int(round(onset * sample_rate))
            if start >= length:
                break
            end = min(int(round((onset + duration) * sample_rate)), length)
            t = np.arange(end - start) / sample_rate
            out[start:end] += _tone_stack(rng, profile.chord_style, tones, t, duration, brightness, sample_rate)
            note = 1.2 * _tone_stack(rng, "pluck", np.array([float(bass)]), t, duration, 3.0, sample_rate)
            out[start:end] += note
            bass_line[start:end] += note
    return out, bass_line


def _tone_stack(
    rng: np.random.Generator,
    style: str,
    midi: np.ndarray,
    t: np.ndarray,
    duration: float,
    brightness: float,
    sample_rate: int,
) -> np.ndarray:
    """Harmonic tones sounding together for one strike (no vibrato, no formants)."""
    harmonics = 6 if style == "pad" else 8
    out = np.zeros_like(t)
    for frequency in midi_to_hz(midi).ravel():
        phase = np.mod(2 * np.pi * frequency * t + rng.uniform(0, 2 * np.pi), 2 * np.pi)
        gains = np.arange(1, harmonics + 1, dtype=np.float64) ** -brightness
        gains *= _below_nyquist(frequency * np.arange(1, harmonics + 1), sample_rate)
        if style == "pad":
            out += _sum_harmonics(phase, lambda i: gains[i], harmonics)
        else:
            # Plucked: higher harmonics die away faster (harmonic k decays at 3 + 2k per second).
            out += np.exp(-3.0 * t) * _sum_harmonics(phase, lambda i: gains[i], harmonics, np.exp(-2.0 * t))
    if style == "pad":
        # Slow attack and release; all harmonics sustain.
        return 0.5 * np.clip(t / 0.08, 0, 1) * np.clip((duration - t) / 0.1, 0, 1) * out
    return np.clip(t / 0.003, 0, 1) * np.clip((duration - t) / 0.02, 0, 1) * out


def synth_drums(
    rng: np.random.Generator, profile: DomainProfile, beat: float, length: int, sample_rate: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Kick, snare and hi-hat hits on the beat grid, with a few random fills and drops."""
    beats = int(np.ceil(length / sample_rate / beat))
    onsets: dict[str, list[int]] = {"kick": [], "snare": [], "hihat": []}
    for b in range(beats):
        in_bar = b % 4
        if in_bar in profile.kick_beats or (in_bar == 2 and rng.random() < 0.3):
            onsets["kick"].append(int(round(b * beat * sample_rate)))
        if in_bar in profile.snare_beats:
            onsets["snare"].append(int(round(b * beat * sample_rate)))
        for sub in range(profile.hihats_per_beat):
            if rng.random() < 0.9:
                onsets["hihat"].append(int(round((b + sub / profile.hihats_per_beat) * beat * sample_rate)))
    out = np.zeros(length)
    result: dict[str, np.ndarray] = {}
    for name, positions in onsets.items():
        kept = np.array([p for p in positions if p < length], dtype=np.int64)
        result[name] = kept
        for position in kept:
            hit = _drum_hit(rng, name, sample_rate) * float(rng.uniform(0.7, 1.0))
            end = min(position + len(hit), length)
            out[position:end] += hit[: end - position]
    return out, result


def _drum_hit(rng: np.random.Generator, name: str, sample_rate: int) -> np.ndarray:
    if name == "kick":
        t = np.arange(int(0.3 * sample_rate)) / sample_rate
        pitch = 50.0 + 90.0 * np.exp(-t / 0.03)
        return 2.0 * np.sin(2 * np.pi * np.cumsum(pitch) / sample_rate) * np.exp(-t / 0.09)
    if name == "snare":
        t = np.arange(int(0.2 * sample_rate)) / sample_rate
        noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference: tilted towards highs
        return (0.6 * noise + 0.8 * np.sin(2 * np.pi * 185.0 * t)) * np.exp(-t / 0.06)
    t = np.arange(int(0.08 * sample_rate)) / sample_rate
    noise = np.diff(rng.standard_normal(len(t) + 2), n=2)  # second difference: mostly highs
    return 0.35 * noise * np.exp(-t / 0.015)


def _scale_step(scale: np.ndarray, step: int) -> int:
    """Semitones above the key root of scale degree ``step`` (may run into the next octave)."""
    return int(scale[step % 7] + 12 * (step // 7))


def _below_nyquist(freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """1 well below Nyquist, fading to 0 at 0.45 * sample_rate (no aliased partials)."""
    return np.clip((0.45 * sample_rate - freq) / (0.05 * sample_rate), 0.0, 1.0)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    return (cumulative[width:] - cumulative[:-width]) / width


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))
