"""Memory bank: token order, temporal indices, pointer handling and the bound."""

import pytest
import torch

from thrifty.tam.memory import MemoryBank


def _add(bank: MemoryBank, idx: int, is_cond: bool = False, n: int = 4, cm: int = 4) -> None:
    tokens = torch.full((1, n, cm), float(idx))
    bank.add(idx, tokens, torch.zeros_like(tokens), torch.full((1, 2 * cm), float(idx)), is_cond)


def test_order_and_temporal_indices() -> None:
    bank = MemoryBank(num_maskmem=4, max_obj_ptrs=3, grid=(2, 2))
    _add(bank, 0, is_cond=True)
    for t in range(1, 6):
        _add(bank, t)
    tpos = torch.arange(4.0).view(4, 1).expand(4, 4)
    mem = bank.gather(6, tpos)
    frame_ids = [int(mem.tokens[0, 4 * i, 0]) for i in range(mem.layout.n_frames)]
    assert frame_ids == [0, 3, 4, 5]  # [cond ; recent oldest -> newest]
    assert mem.tpos_indices == [3, 0, 1, 2]  # cond -> last index; t-1 -> 0
    assert int(mem.pos[0, 4 * 3, 0]) == 2 and int(mem.pos[0, 0, 0]) == 3
    assert mem.layout.n_ptr_tokens == 3 * 2  # 3 pointers of width 8 split into 2 tokens of 4
    ptr_ids = mem.tokens[0, -6:, 0].tolist()
    assert ptr_ids == [0, 0, 4, 4, 5, 5] and mem.pos[0, -6:].abs().sum() == 0  # cond pointer always kept


def test_only_past_memories_are_used() -> None:
    bank = MemoryBank(num_maskmem=4, max_obj_ptrs=8, grid=(2, 2))
    _add(bank, 0, is_cond=True)
    _add(bank, 1)
    _add(bank, 2)
    mem = bank.gather(2, torch.zeros(4, 4))
    assert mem.layout.n_frames == 2 and mem.layout.n_ptr_tokens == 4
    with pytest.raises(ValueError, match="no memory earlier"):
        MemoryBank(grid=(2, 2)).gather(0, torch.zeros(7, 4))


def test_bank_never_exceeds_its_bound() -> None:
    bank = MemoryBank(num_maskmem=7, max_obj_ptrs=16, grid=(2, 2))
    _add(bank, 0, is_cond=True)
    for t in range(1, 60):
        _add(bank, t)
        assert len(bank) <= 7 and len(bank.ptrs) <= 16
    assert len(bank) == 7 and len(bank.ptrs) == 16
    assert bank.gather(60, torch.zeros(7, 4)).tokens.shape[1] == 7 * 4 + 16 * 2


def test_wrong_memory_shape_raises() -> None:
    bank = MemoryBank(grid=(2, 2))
    with pytest.raises(ValueError, match="tokens, pos"):
        bank.add(0, torch.zeros(1, 5, 4), torch.zeros(1, 5, 4), torch.zeros(1, 8), True)
