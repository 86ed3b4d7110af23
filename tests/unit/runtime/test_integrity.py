"""The Merkle tree and the signed checkpoints of runtime/integrity.py (pure: no database)."""
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.audit import CheckpointSigned
from runtime.integrity import (
    EMPTY_ROOT, InclusionProofs, MerkleFrontier, checkpoint_problems, event_leaf, inclusion_proof, leaf_hash, next_checkpoint,
    public_key, public_key_hex, sign_checkpoint, signing_key, tree_root, verify_inclusion,
)

# The reference leaves, roots and inclusion paths of Certificate Transparency's test suites (RFC 6962).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS_OF_8 = {
    0: ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    5: ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
KEY = signing_key("11" * 32)


def _leaves(n: int) -> list[bytes]:
    return [event_leaf(i + 1, hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


def test_the_frontier_gives_the_reference_roots_of_certificate_transparency():
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for size, (leaf, expected) in enumerate(zip(CT_LEAVES, CT_ROOTS), start=1):
        frontier.append(leaf_hash(leaf))
        assert frontier.size == size and frontier.root().hex() == expected
        assert tree_root([leaf_hash(d) for d in CT_LEAVES[:size]]).hex() == expected


def test_the_frontier_root_is_the_recursive_tree_hash_for_every_size_up_to_70():
    leaves = _leaves(70)
    frontier = MerkleFrontier()
    assert frontier.root() == tree_root([])
    for size in range(1, 71):
        frontier.append(leaves[size - 1])
        assert len(frontier.nodes) == bin(size).count("1")
        assert frontier.root() == tree_root(leaves[:size]), size


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 70), st.integers(0, 70))
def test_a_frontier_stored_as_json_goes_on_where_it_stopped(first, more):
    leaves = _leaves(first + more)
    stored = MerkleFrontier()
    for leaf in leaves[:first]:
        stored.append(leaf)
    resumed = MerkleFrontier.from_json(first, stored.to_json())
    for leaf in leaves[first:]:
        resumed.append(leaf)
    assert resumed.size == first + more and resumed.root() == tree_root(leaves)


def test_a_frontier_that_does_not_fit_its_size_is_refused():
    with pytest.raises(ValueError):
        MerkleFrontier(3, [EMPTY_ROOT])  # 3 = 2 + 1: two nodes
    with pytest.raises(ValueError):
        MerkleFrontier.from_json(1, ["ab"])


def test_the_leaf_of_an_event_is_its_position_and_hash():
    event_hash = "ab" * 32
    assert event_leaf(258, event_hash) == hashlib.sha256(b"\x00" + bytes([0, 0, 0, 0, 0, 0, 1, 2]) + b"\xab" * 32).digest()
    assert event_leaf(258, event_hash) != event_leaf(259, event_hash)


def test_inclusion_proofs_match_the_reference_paths_and_verify():
    hashed = [leaf_hash(d) for d in CT_LEAVES]
    root = bytes.fromhex(CT_ROOTS[7])
    for index, expected in CT_PATHS_OF_8.items():
        proof = inclusion_proof(hashed, index, 8)
        assert [p.hex() for p in proof] == expected
        assert verify_inclusion(hashed[index], index, 8, proof, root)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_leaf_proves_its_way_to_the_root_and_no_other_leaf_uses_its_proof(case):
    size, index = case
    leaves = _leaves(size)
    root = tree_root(leaves)
    proof = inclusion_proof(leaves, index, size)
    assert verify_inclusion(leaves[index], index, size, proof, root)
    assert not verify_inclusion(leaves[index], index, size, proof, EMPTY_ROOT)
    if size > 1:
        other = (index + 1) % size
        assert not verify_inclusion(leaves[other], index, size, proof, root)
        assert not verify_inclusion(leaves[index], other, size, proof, root)
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], root)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1))))
def test_proofs_built_in_one_pass_over_the_leaves_are_the_recursive_ones(case):
    """`fangpin audit export`'s proofs: the leaves stream by once, only the proven ones' paths are kept."""
    size, proven = case
    leaves = _leaves(size)
    proofs = InclusionProofs(size)
    for index, leaf in enumerate(leaves):
        assert proofs.append(leaf, prove=index in proven) == index
    assert proofs.root() == tree_root(leaves)
    for index in proven:
        assert proofs.proof(index) == inclusion_proof(leaves, index, size), index
    with pytest.raises(ValueError):
        proofs.append(leaves[0])  # more leaves than the tree has
    short = InclusionProofs(size + 1)
    short.append(leaves[0], prove=True)
    with pytest.raises(ValueError):
        short.proof(0)  # not every leaf has come yet


def test_a_proof_against_a_smaller_tree_of_the_same_leaves():
    leaves = _leaves(13)
    proof = inclusion_proof(leaves, 4, 9)
    assert verify_inclusion(leaves[4], 4, 9, proof, tree_root(leaves[:9]))
    with pytest.raises(ValueError):
        inclusion_proof(leaves, 9, 9)


def _frontier(n: int) -> MerkleFrontier:
    frontier = MerkleFrontier()
    for leaf in _leaves(n):
        frontier.append(leaf)
    return frontier


def test_a_checkpoint_is_signed_over_every_field_but_the_frontier_and_round_trips_through_its_contract():
    first = next_checkpoint(None, _frontier(5), 7, service="intake", signed_at="2026-01-02T03:04:05.000006Z",
                            key_id="1", private_key=KEY)
    assert first["sequence"] == 1 and first["previous_root"] is None and first["tree_size"] == 5
    assert checkpoint_problems(first, KEY.public_key()) == []
    second = next_checkpoint(first, _frontier(9), 12, service="intake", signed_at="2026-01-02T03:04:10.000000Z",
                             key_id="1", private_key=KEY)
    assert (second["sequence"], second["previous_root"]) == (2, first["root"])
    # The contract reads it as it is stored (the signed spelling of signed_at is the stored one).
    assert CheckpointSigned.model_validate(second).root == second["root"]
    assert public_key(public_key_hex(KEY)).public_bytes_raw() == KEY.public_key().public_bytes_raw()


@pytest.mark.parametrize("change", [
    {"root": "00" * 32}, {"tree_size": 6}, {"upto_position": 8}, {"sequence": 2}, {"service": "screening"},
    {"previous_root": "11" * 32}, {"signed_at": "2026-01-02T03:04:05.000007Z"}, {"key_id": "2"},
])
def test_any_signed_field_changed_breaks_the_signature(change):
    checkpoint = next_checkpoint(None, _frontier(5), 7, service="intake", signed_at="2026-01-02T03:04:05.000006Z",
                                 key_id="1", private_key=KEY)
    problems = checkpoint_problems({**checkpoint, **change}, KEY.public_key())
    assert any("signature does not verify" in p for p in problems), problems


def test_a_frontier_that_does_not_give_the_signed_root_and_another_key_are_named():
    checkpoint = next_checkpoint(None, _frontier(5), 7, service="intake", signed_at="2026-01-02T03:04:05.000006Z",
                                 key_id="1", private_key=KEY)
    forged = {**checkpoint, "frontier": [_frontier(5).to_json()[0], "00" * 32]}  # 5 = 4 + 1: the 1 replaced
    assert checkpoint_problems(forged, KEY.public_key()) == ["its frontier does not give the root it signs"]
    other = signing_key("22" * 32)
    assert any("signature does not verify" in p for p in checkpoint_problems(checkpoint, other.public_key()))
    assert checkpoint_problems(sign_checkpoint({"service": "intake"}, KEY), KEY.public_key())[0].startswith("lacks")
