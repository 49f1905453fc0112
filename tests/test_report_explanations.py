"""Explanations the data already hold, each computed from results: where NetConv's parameters
are, whether NetFull's training loss had levelled off, near-duplicate hidden units, and the
hand design's width against random starts.  Known answers on synthetic data; a changed input
changes the sentence."""

from nnstudies.report import checker, kmnist, sweeps
from nnstudies.stats import wilson


def _layers(conv1: int, conv2: int, fc: int) -> dict:
    return {"settings": {"layers": [
        {"layer": "conv1", "module": "Conv2d(1, 32, ...)", "parameters": conv1},
        {"layer": "conv2", "module": "Conv2d(32, 64, ...)", "parameters": conv2},
        {"layer": "fc", "module": "Linear(3136, 128)", "parameters": fc}]}}


def test_the_conv_share_is_counted_from_the_layers():
    text = kmnist.conv_share_sentence(_layers(300, 700, 9000))
    assert "2 conv layers hold 1,000 of its 10,000 parameters (10.0%)" in text
    assert "hold the other 9,000 (90.0%)" in text
    assert "(50.0%)" in kmnist.conv_share_sentence(_layers(2000, 3000, 5000))


def _curve(losses: list[float]) -> dict:
    return {"title": "NetFull", "history": [{"epoch": i + 1, "train_loss": v} for i, v in enumerate(losses)],
            "settings": {"epochs": len(losses), "batch_size": 64}, "data": {"train_images": 8000}}


def test_the_training_curve_says_whether_the_loss_levelled_off():
    falling = kmnist.training_curve_sentence(_curve([1.0, 0.8, 0.7]))
    assert "still falling, by 12.5% over the last epoch (0.800 to 0.700)" in falling
    assert "NetFull's 3 epochs are 375 SGD steps on this data, against 2,814 on the course's 60,000" in falling
    level = kmnist.training_curve_sentence(_curve([1.0, 0.700, 0.699]))
    assert "level over the last epoch (0.700 to 0.699)" in level and "still falling" not in level
    assert "loss" not in kmnist.training_curve_sentence(_curve([1.0]))  # one epoch: no curve


def test_near_duplicate_units_are_found_by_their_lines():
    w = {"in_weight": [[6.28, 4.53], [-7.9, -8.0], [6.27, 4.67]], "hid_bias": [-8.91, 4.27, -8.99]}
    text = checker.duplicate_units_text(w)
    assert text.startswith("Near-duplicate units: h0 and h2 (cosine 0.99")
    assert "the 3 units draw about 2 distinct half-planes" in text
    w["in_weight"][2] = [-6.27, 4.67]  # now another line: no twins
    assert checker.duplicate_units_text(w).startswith("No two of the 3 hidden units")


def test_the_hand_designs_width_against_random_starts():
    low, high = wilson(2, 35)
    sizes = {"hid_4": {"hid": 4, "runs": 35, "successes": 2, "rate": 2 / 35, "low": low, "high": high}}
    hand = {"design": {"hid_bias": [-1.5, -0.5, 0.5, 1.5]}, "step": {"correct": 9}}
    text = sweeps.hand_text(sizes, hand)
    assert text == ("At hid = 4, the hand-designed net's width, a solution with that many units "
                    "exists (the hand design classifies all nine points), yet single random runs "
                    "reach one in 2 of 35 (6%, 95% interval 2-19%).")
    hand["step"]["correct"] = 8
    assert "does not classify all nine points" in sweeps.hand_text(sizes, hand)
    assert sweeps.hand_text({}, hand) == ""
