"""Native resolution is held, and positions are cited in the frame the model sees (#13 item 3)."""

import json
import shutil

import pytest
from PIL import Image

from models.envelope import format_target
from models.vlm.encoding import PixelBudget, PromptEncoder, PromptRequest, resolution_table
from models.vlm.model import NATIVE_MAX_PIXELS, LoadedVLM, VLMConfig, declared_pixel_bounds

BREAKFAST_BOX = (1600, 1280)  # width, height


@pytest.fixture(scope="module")
def no_max_pixels(tiny_model_dir, tmp_path_factory):
    """The tiny checkpoint with a processor config that declares no max_pixels (as some checkpoints ship)."""
    directory = tmp_path_factory.mktemp("nomax") / "qwen25vl"
    shutil.copytree(tiny_model_dir, directory)
    path = directory / "processor_config.json"
    config = json.loads(path.read_text())
    del config["image_processor"]["size"]
    path.write_text(json.dumps(config))
    return directory


def _grid(vlm: LoadedVLM, size: tuple[int, int]) -> list[int]:
    batch = vlm.processor.image_processor(images=[Image.new("RGB", size)], return_tensors="pt")
    return batch["image_grid_thw"][0].tolist()


def test_a_checkpoint_without_max_pixels_keeps_native_resolution(no_max_pixels):
    assert declared_pixel_bounds(no_max_pixels) == (None, None)
    vlm = LoadedVLM.from_pretrained(no_max_pixels)
    size = vlm.processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (56 * 56, NATIVE_MAX_PIXELS)
    # transformers alone would use the class default 1,003,520 and shrink 1600×1280 to 1120×896 (64×80 patches)
    assert _grid(vlm, BREAKFAST_BOX) == [1, 92, 114]  # 1596×1288: 2,622 visual tokens
    budget = PixelBudget.of(vlm.processor)
    assert budget.model_size(*BREAKFAST_BOX) == (1596, 1288)
    assert budget.visual_tokens(*BREAKFAST_BOX) == 2622


def test_qwens_flat_preprocessor_config_without_max_pixels_is_native_too(no_max_pixels, tmp_path):
    directory = tmp_path / "flat"
    shutil.copytree(no_max_pixels, directory)
    processor_config = json.loads((directory / "processor_config.json").read_text())
    flat = {**processor_config.pop("image_processor"), "min_pixels": 3136, "processor_class": "Qwen2_5_VLProcessor"}
    (directory / "preprocessor_config.json").write_text(json.dumps(flat))
    (directory / "processor_config.json").write_text(json.dumps(processor_config))
    assert declared_pixel_bounds(directory) == (3136, None)
    assert _grid(LoadedVLM.from_pretrained(directory), BREAKFAST_BOX) == [1, 92, 114]


def test_a_user_setting_lowers_the_budget_and_declared_bounds_are_kept(no_max_pixels, tiny_model_dir):
    lowered = LoadedVLM.from_pretrained(no_max_pixels, VLMConfig(max_pixels=1_003_520))
    assert _grid(lowered, BREAKFAST_BOX) == [1, 64, 80]
    assert declared_pixel_bounds(tiny_model_dir) == (56 * 56, 224 * 224)
    assert LoadedVLM.from_pretrained(tiny_model_dir).processor.image_processor.size["longest_edge"] == 224 * 224
    with pytest.raises(ValueError, match=r"VLMConfig\.max_pixels must be an integer >= 784"):
        VLMConfig(max_pixels=10)
    with pytest.raises(ValueError, match=r"min_pixels \(5000\) is above max_pixels"):
        VLMConfig(min_pixels=5000, max_pixels=4000)


def test_targets_cite_positions_in_the_frame_the_model_sees(tiny_model_dir, tmp_path):
    """The tiny model sees at most 224² pixels: a 448×448 image is halved, and so are the cited positions."""
    Image.new("RGB", (448, 448), (200, 30, 30)).save(tmp_path / "test.png")
    Image.new("RGB", (112, 112), (90, 90, 90)).save(tmp_path / "example.png")
    vlm = LoadedVLM.from_pretrained(tiny_model_dir)
    encoder = PromptEncoder(vlm.processor)
    example_target = format_target("A pin at [10,20,30,40].", "1")
    request = PromptRequest("How many pins?", tmp_path / "example.png", example_target, tmp_path / "test.png")
    target = format_target("Pins at [100,200,300,400] and the centre at (224, 100); 40 px apart.", "2")
    example = encoder.encode_example(request, target)
    assert example.prompt.test_scale == (0.5, 0.5)
    text = vlm.tokenizer.decode(example.target_ids.tolist(), skip_special_tokens=True)
    assert text == format_target("Pins at [50,100,150,200] and the centre at (112, 50); 40 px apart.", "2")
    prompt_text = vlm.tokenizer.decode(example.prompt.input_ids.tolist())
    assert "[10,20,30,40]" in prompt_text  # the 112×112 example is seen at its own size


def test_resolution_table_reports_what_the_model_sees(tmp_path):
    for name, size in (("a", BREAKFAST_BOX), ("b", BREAKFAST_BOX), ("c", (1700, 1000))):
        Image.new("RGB", size).save(tmp_path / f"{name}.png")
    table = resolution_table(PixelBudget(3136, NATIVE_MAX_PIXELS), sorted(tmp_path.glob("*.png")))
    assert table.to_dict("records") == [
        {"width": 1600, "height": 1280, "images": 2, "model_width": 1596, "model_height": 1288, "visual_tokens": 2622},
        {"width": 1700, "height": 1000, "images": 1, "model_width": 1708, "model_height": 1008, "visual_tokens": 2196},
    ]
