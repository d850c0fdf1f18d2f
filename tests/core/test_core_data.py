from __future__ import annotations

import pytest
import torch

from thrifty.core.data import (
    PHOTO_NAMES,
    ByteTokenizer,
    CharTokenizer,
    load_photo,
    random_token_batch,
    shakespeare_plays,
    split_plays,
)


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee"])
def test_photos_load_in_unit_range(name: str) -> None:
    img = load_photo(name, size=(24, 32))
    assert img.shape == (24, 32, 3) and img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0.01
    assert load_photo(name, size=16, gray=True).shape == (16, 16)


def test_every_listed_photo_is_bundled() -> None:
    for name in PHOTO_NAMES:
        assert load_photo(name, size=8).shape == (8, 8, 3)


def test_unknown_photo_names_choices() -> None:
    with pytest.raises(ValueError, match="name: expected one of astronaut"):
        load_photo("eagle")


def test_shakespeare_split_by_play() -> None:
    plays = shakespeare_plays()
    assert len(plays) >= 30 and "hamlet" in plays
    train, val = split_plays(plays, n_val=3, seed=1)
    assert len(val) > 10_000 and len(train) > 10 * len(val)
    val_plays = [n for n, t in plays.items() if t in val]
    assert len(val_plays) == 3 and all(plays[n] not in train for n in val_plays)
    assert split_plays(plays, n_val=3, seed=1) == (train, val)


def test_char_tokenizer_round_trip_and_unknown() -> None:
    tok = CharTokenizer.fit("hello world")
    ids = tok.encode("hello")
    assert tok.decode(ids) == "hello" and int(ids.min()) >= 1
    assert int(tok.encode("z")[0]) == 0  # unseen -> <unk>
    assert CharTokenizer.from_dict(tok.to_dict()).encode("world").tolist() == tok.encode("world").tolist()


def test_byte_tokenizer_round_trip() -> None:
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("Ünïcode")) == "Ünïcode"


def test_random_token_batch_targets_are_shifted() -> None:
    ids = torch.arange(100)
    x, y = random_token_batch(ids, batch=4, seq_len=10, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="longer than seq_len=200"):
        random_token_batch(ids, 2, 200)
