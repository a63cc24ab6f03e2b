"""The --non-landmarks folder: checked before any step runs, its digest in the Trainer's options
(new photos re-train), and the flags from the command line to the options."""

from __future__ import annotations

import pytest

from imgtfx import cli
from imgtfx.trainer import non_landmarks
from imgtfx.trainer.options import TrainerOptions
from tests.helpers.images import encode, write


def test_the_folder_is_made_absolute_and_its_digest_follows_its_photos(tmp_path, monkeypatch):
    folder = tmp_path / "없는 곳"  # a user's folder names are not ASCII
    write(folder / "a.jpg", encode("JPEG", size=(20, 20), seed=1))
    write(folder / ".DS_Store", b"hidden: left out")
    monkeypatch.chdir(tmp_path)
    resolved = non_landmarks.resolve(TrainerOptions(non_landmarks="없는 곳"))
    assert resolved.non_landmarks == str(folder)
    assert non_landmarks.files(str(folder)) == [str(folder / "a.jpg")]
    again = non_landmarks.resolve(TrainerOptions(non_landmarks=str(folder)))
    assert again.non_landmarks_sha256 == resolved.non_landmarks_sha256
    write(folder / "b.jpg", encode("JPEG", size=(20, 20), seed=2))
    grown = non_landmarks.resolve(TrainerOptions(non_landmarks=str(folder)))
    assert grown.non_landmarks_sha256 != resolved.non_landmarks_sha256


def test_a_folder_that_is_missing_empty_or_without_one_photo_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--non-landmarks: no folder at"):
        non_landmarks.resolve(TrainerOptions(non_landmarks=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--non-landmarks: no file in"):
        non_landmarks.resolve(TrainerOptions(non_landmarks=str(tmp_path / "empty")))
    write(tmp_path / "text" / "notes.txt", b"no photo")
    with pytest.raises(ValueError, match=r"not one usable photo .*\(1 rejected\)"):
        non_landmarks.read(str(tmp_path / "text"), max_pixels=10**6)


def test_the_options_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="--neighbours is 0"):
        TrainerOptions(non_landmarks="folder", neighbours=0)
    with pytest.raises(ValueError, match="--min-confidence must be in"):
        TrainerOptions(min_confidence=1.5)


def test_the_flags_reach_the_trainer_options_and_a_missing_folder_is_exit_code_2(tmp_path, capsys):
    folder = tmp_path / "distractors"
    argv = ["run", "--sample", "--root", str(tmp_path / "r"), "--non-landmarks", str(folder)]
    args = cli.build_parser().parse_args([*argv, "--min-confidence", "0.2"])
    cli.check_args(args)
    options = args.config.trainer_options
    assert (options.non_landmarks, options.min_confidence) == (str(folder), 0.2)
    assert cli.main(argv) == 2
    assert f"--non-landmarks: no folder at {folder}" in capsys.readouterr().err
