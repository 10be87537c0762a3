"""Common corruptions against CIFAR-10-C's generator (make_cifar_c.py of hendrycks/robustness), and the
CIFAR-10-C folder reader.

Each deterministic corruption is compared with the generator's function written out here per image (float HWC,
skimage / scipy / OpenCV / Pillow as it calls them, then ``np.uint8``); each random one with the same formula fed
the same random fields (the package's ``*_from_*`` helpers take them), and by its statistics.
"""

import subprocess
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom

from robustbench_mix.core.errors import UsageError
from robustbench_mix.corruptions import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    STANDARD_CORRUPTIONS,
    blur,
    check_corruptions,
    corrupt,
    digital,
    expand,
    load_standard,
    weather,
)

sk = pytest.importorskip("skimage")
cv2 = pytest.importorskip("cv2")
from skimage.color import hsv2rgb, rgb2hsv  # noqa: E402
from skimage.filters import gaussian  # noqa: E402

TARBALLS = [Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.tar.gz",
            Path("/work/shared/data/cifar10-jpeg.tar.gz")]
RELEASE = STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS


# ------------------------------------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def digits_rgb():
    """48 sklearn digits upscaled to 32 x 32 (bilinear) and coloured unevenly, as uint8 (N, 32, 32, 3)."""
    from sklearn.datasets import load_digits

    d = load_digits().images[:48] * (255 / 16)
    up = np.stack([np.asarray(Image.fromarray(im.astype(np.uint8)).resize((32, 32), Image.BILINEAR)) for im in d])
    up = up.astype(np.float64)
    return np.stack([up, 255 - 0.6 * up, 0.5 * up + 60], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cifar_rgb(tmp_path_factory):
    """A few hundred real CIFAR-10 test images (JPEG q75) when the shared tarball is there."""
    tar = next((t for t in TARBALLS if t.exists()), None)
    if tar is None:
        pytest.skip("cifar10-jpeg.tar.gz is not there")
    root = tmp_path_factory.mktemp("c10")
    subprocess.run(["tar", "-xzf", str(tar), "-C", str(root), "--wildcards", "cifar10-jpeg/test/*/00[0-1]?.jpg"],
                   check=True)
    files = sorted(root.glob("cifar10-jpeg/test/*/*.jpg"))[:200]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


@pytest.fixture(scope="module", params=["digits", "cifar"])
def images(request):
    return request.getfixturevalue("digits_rgb" if request.param == "digits" else "cifar_rgb")


def needs_frost_images():
    """Frost's images ship with the package (corruptions/frost.npz): always there."""


def run(images, name, severity, seed=0):
    """``corrupt`` on HWC uint8 images, back as HWC."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return corrupt(x, name, severity, seed).permute(0, 2, 3, 1).numpy()


def param(name, severity):
    return CORRUPTIONS.get(name).params[severity - 1]


# -------------------------------------------------------------------- the generator, written out per image
def g_gaussian_blur(x, c):
    return np.clip(gaussian(np.array(x) / 255., sigma=c, channel_axis=-1), 0, 1) * 255


def g_contrast(x, c):
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def g_brightness(x, c):
    x = rgb2hsv(np.array(x) / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def g_saturate(x, c):
    x = rgb2hsv(np.array(x) / 255.)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def g_disk(radius, alias_blur=0.1, dtype=np.float32):
    L, ksize = (np.arange(-8, 8 + 1), (3, 3)) if radius <= 8 else (np.arange(-radius, radius + 1), (5, 5))
    X, Y = np.meshgrid(L, L)
    aliased_disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def g_defocus_blur(x, c):
    x = np.array(x) / 255.
    kernel = g_disk(radius=c[0], alias_blur=c[1])
    channels = np.array([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]).transpose((1, 2, 0))
    return np.clip(channels, 0, 1) * 255


def g_clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top:trim_top + h, trim_top:trim_top + h]


def g_zoom_blur(x, c):
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += g_clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def g_pixelate(x, c):
    x = Image.fromarray(x)
    x = x.resize((int(32 * c), int(32 * c)), Image.BOX)
    return np.asarray(x.resize((32, 32), Image.BOX))


def g_jpeg_compression(x, c):
    output = BytesIO()
    Image.fromarray(x).save(output, "JPEG", quality=c)
    return np.asarray(Image.open(output))


def g_glass_blur(x, c, draws):
    """``draws``: the randint(-d, d, size=(2,)) results in the generator's loop order."""
    x = np.uint8(gaussian(np.array(x) / 255., sigma=c[0], channel_axis=-1) * 255)
    k = 0
    for _ in range(c[2]):
        for h in range(32 - c[1], c[1], -1):
            for w in range(32 - c[1], c[1], -1):
                dx, dy = draws[k]
                k += 1
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(gaussian(x / 255., sigma=c[0], channel_axis=-1), 0, 1) * 255


def g_plasma_fractal(rng, mapsize=32, wibbledecay=3):
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    def fillsquares():
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)

    def filldiamonds():
        mapsize_ = maparray.shape[0]
        drgrid = maparray[stepsize // 2:mapsize_:stepsize, stepsize // 2:mapsize_:stepsize]
        ulgrid = maparray[0:mapsize_:stepsize, 0:mapsize_:stepsize]
        ltsum = (drgrid + np.roll(drgrid, 1, axis=0)) + (ulgrid + np.roll(ulgrid, -1, axis=1))
        maparray[0:mapsize_:stepsize, stepsize // 2:mapsize_:stepsize] = wibbledmean(ltsum)
        ttsum = (drgrid + np.roll(drgrid, 1, axis=1)) + (ulgrid + np.roll(ulgrid, -1, axis=0))
        maparray[stepsize // 2:mapsize_:stepsize, 0:mapsize_:stepsize] = wibbledmean(ttsum)

    while stepsize >= 2:
        fillsquares()
        filldiamonds()
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def g_fog(x, c, fractal):
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * fractal[:32, :32][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def g_motion_blur(img, radius, sigma, angle):
    """ImageMagick 6's MotionBlurImage (effect.c) pixel by pixel on an 8-bit image (H, W, C), Q16 quanta."""
    width = int(2 * np.ceil(radius) + 1)
    kernel = np.array([np.exp(-(i * i) / (2.0 * sigma * sigma)) / (np.sqrt(2 * np.pi) * sigma)
                       for i in range(width)])
    kernel /= kernel.sum()
    px, py = width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle))
    offsets = [(int(np.ceil(i * py / np.hypot(px, py) - 0.5)), int(np.ceil(i * px / np.hypot(px, py) - 0.5)))
               for i in range(width)]
    h, w = img.shape[:2]
    out = np.empty_like(img)
    for y in range(h):
        for x in range(w):
            q = np.zeros(img.shape[2])
            for k, (ox, oy) in zip(kernel, offsets, strict=True):
                q += k * (img[min(max(y + oy, 0), h - 1), min(max(x + ox, 0), w - 1)].astype(np.float64) * 257)
            quantum = np.minimum(np.floor(q + 0.5), 65535).astype(np.int64)
            out[y, x] = ((quantum + 128) - ((quantum + 128) >> 8)) >> 8
    return out


def g_snow(x, c, snow_layer, angle):
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = g_clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = (np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    snow_layer = g_motion_blur(snow_layer[..., np.newaxis], c[4], c[5], angle) / 255.
    x = c[6] * x + (1 - c[6]) * np.maximum(x, cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(32, 32, 1) * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def g_spatter(x, c, liquid_layer):
    x = np.array(x, dtype=np.float32) / 255.
    liquid_layer = gaussian(liquid_layer, sigma=c[2])
    liquid_layer[liquid_layer < c[3]] = 0
    if c[5] == 0:
        liquid_layer = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid_layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid_layer * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= c[4]
        color = np.concatenate((175 / 255. * np.ones_like(m[..., :1]), 238 / 255. * np.ones_like(m[..., :1]),
                                238 / 255. * np.ones_like(m[..., :1])), axis=2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        return cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    m = np.where(liquid_layer > c[3], 1, 0)
    m = gaussian(m.astype(np.float32), sigma=c[4])
    m[m < 0.8] = 0
    color = np.concatenate((63 / 255. * np.ones_like(x[..., :1]), 42 / 255. * np.ones_like(x[..., :1]),
                            20 / 255. * np.ones_like(x[..., :1])), axis=2)
    color *= m[..., np.newaxis]
    x *= (1 - m[..., np.newaxis])
    return np.clip(x + color, 0, 1) * 255


def g_elastic_transform(image, c, shifts, ux, uy):
    image = np.array(image, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size, [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + shifts.astype(np.float32)
    M = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, M, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(ux, c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(uy, c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    return np.clip(map_coordinates(image, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255


DETERMINISTIC = {"gaussian_blur": g_gaussian_blur, "contrast": g_contrast, "brightness": g_brightness,
                 "saturate": g_saturate, "defocus_blur": g_defocus_blur, "zoom_blur": g_zoom_blur,
                 "pixelate": g_pixelate, "jpeg_compression": g_jpeg_compression}


def generator(fn, images, *args):
    return np.stack([np.uint8(fn(img, *args)) for img in images])


# ------------------------------------------------------------------------------------ pixel equality
@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_each_deterministic_corruption_is_the_generators_pixel_for_pixel(images, name, severity):
    want = generator(DETERMINISTIC[name], images, param(name, severity))
    assert np.array_equal(run(images, name, severity), want)


def test_contrast_pulls_each_channel_to_its_own_mean_not_one_mean(digits_rgb):
    """The earlier suite took one mean over all channels; on coloured images that is other pixels."""
    x = digits_rgb / 255.
    one_mean = np.uint8(np.clip((x - x.mean(axis=(1, 2, 3), keepdims=True)) * 0.4
                                + x.mean(axis=(1, 2, 3), keepdims=True), 0, 1) * 255)
    got = run(digits_rgb, "contrast", 3)
    assert np.array_equal(got, generator(g_contrast, digits_rgb, 0.4)) and not np.array_equal(got, one_mean)


def test_gaussian_blur_repeats_the_edge_pixel_as_skimage_does_not_reflects(digits_rgb):
    from scipy.ndimage import gaussian_filter

    got = run(digits_rgb, "gaussian_blur", 5)
    reflect = np.uint8(np.clip(gaussian_filter(digits_rgb / 255., (0, 1, 1, 0), mode="reflect"), 0, 1) * 255)
    assert np.array_equal(got, generator(g_gaussian_blur, digits_rgb, 1.0)) and not np.array_equal(got, reflect)


def test_pixels_are_truncated_as_np_uint8_not_rounded(digits_rgb):
    exact = np.stack([g_brightness(img, 0.1) for img in digits_rgb])
    got = run(digits_rgb, "brightness", 2)
    assert np.array_equal(got, np.uint8(exact))
    assert (np.round(exact).astype(np.uint8) != got).mean() > 0.1  # rounding would move many pixels


def test_glass_blur_is_the_generators_loop_with_the_same_draws(images):
    """The loop's 'swap' through numpy views copies (h', w') into (h, w); a true swap gives other pixels."""
    for severity in (1, 3, 5):
        c = param("glass_blur", severity)
        positions = [(h, w) for h in range(31, 1, -1) for w in range(31, 1, -1)]
        offsets = np.random.default_rng(severity).integers(-1, 1, size=(c[2], len(positions), len(images), 2))
        got = np.uint8(blur.glass_from_offsets(images, c[0], positions, offsets))
        want = np.stack([np.uint8(g_glass_blur(img, c, offsets[:, :, i].reshape(-1, 2)))
                         for i, img in enumerate(images)])
        assert np.array_equal(got, want), severity
    assert (offsets == -1).any()


def test_fog_is_the_generators_with_the_same_fractal(images):
    for severity in (1, 3, 5):
        c = param("fog", severity)
        fractal = weather.plasma_fractal(1, np.random.default_rng(7), 32, c[1])[0]
        assert np.array_equal(fractal, g_plasma_fractal(np.random.default_rng(7), 32, c[1]))
        fractals = weather.plasma_fractal(len(images), np.random.default_rng(severity), 32, c[1])
        got = np.uint8(weather.fog_from_fractal(images, c, fractals))
        want = np.stack([np.uint8(g_fog(img, c, f)) for img, f in zip(images, fractals, strict=True)])
        assert np.array_equal(got, want), severity


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_elastic_transform_is_the_generators_with_the_same_draws(images, severity):
    c = tuple(32 * f for f in param("elastic_transform", severity))
    rng = np.random.default_rng(severity)
    n = len(images)
    shifts = rng.uniform(-c[2], c[2], (n, 3, 2))
    ux, uy = rng.uniform(-1, 1, (n, 32, 32)), rng.uniform(-1, 1, (n, 32, 32))
    got = np.uint8(digital.elastic_from_noise(images, c, shifts, ux, uy))
    want = np.stack([np.uint8(g_elastic_transform(images[i], c, shifts[i], ux[i], uy[i]))
                     for i in range(n)])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_spatter_is_the_generators_with_the_same_layer(images, severity):
    c = param("spatter", severity)
    layer = np.random.default_rng(severity).normal(size=(len(images), 32, 32), loc=c[0], scale=c[1])
    got = np.uint8(weather.spatter_from_layer(images, c, layer.copy()))
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.stack([np.uint8(np.nan_to_num(g_spatter(img, c, lay.copy())))
                         for img, lay in zip(images, layer, strict=True)])
    assert np.array_equal(got, want)


def test_motion_blur_and_snow_follow_imagemagicks_loop(digits_rgb):
    imgs = digits_rgb[:3]
    angles = np.array([-45.0, 12.3, 40.0])
    for severity in (1, 5):
        r, s = param("motion_blur", severity)
        got = blur.motion_blur_u8(imgs, r, s, angles)
        assert np.array_equal(got, np.stack([g_motion_blur(img, r, s, a) for img, a in zip(imgs, angles,
                                                                                           strict=True)]))
    for severity in (1, 3, 5):
        c = param("snow", severity)
        layer = np.random.default_rng(severity).normal(size=(3, 32, 32), loc=c[0], scale=c[1])
        angles = np.array([-135.0, -100.0, -60.0])
        got = np.uint8(weather.snow_from_layer(imgs, c, layer, angles))
        want = np.stack([np.uint8(g_snow(img, c, lay, a)) for img, lay, a in zip(imgs, layer, angles, strict=True)])
        assert np.array_equal(got, want), severity


def test_frost_blends_a_crop_of_the_generators_images(digits_rgb):
    crops = np.random.default_rng(0).integers(0, 256, size=digits_rgb.shape, dtype=np.uint8)
    for severity in (1, 5):
        c = param("frost", severity)
        want = np.stack([np.uint8(np.clip(c[0] * np.array(x) + c[1] * f, 0, 255))
                         for x, f in zip(digits_rgb, crops, strict=True)])
        assert np.array_equal(np.uint8(weather.frost_from_crops(digits_rgb, c, crops)), want)
    frosts = weather.frost_images()
    assert [f.shape[:2] for f in frosts] == [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132), (65, 97)]
    assert all(f.dtype == np.uint8 and f.shape[2] == 3 for f in frosts)
    out = run(digits_rgb, "frost", 5)
    # each image is 0.75 x + 0.45 frost for some crop: the frost part is >= 0 and the images get lighter
    assert (out.astype(int) >= np.uint8(0.75 * digits_rgb)).all() and out.mean() > digits_rgb.mean() + 20


# ------------------------------------------------------------------------------------ random corruptions
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_noise_corruptions_have_the_generators_statistics(severity):
    grey = np.full((200, 32, 32, 3), 128, dtype=np.uint8)
    x = 128 / 255.
    d = run(grey, "gaussian_noise", severity).astype(float) / 255 - x
    c = param("gaussian_noise", severity)
    assert abs(d.std() - c) < 0.03 * c and abs(d.mean() + 0.5 / 255) < 0.002  # truncation: half a level down
    d = run(grey, "speckle_noise", severity).astype(float) / 255 - x
    assert abs(d.std() - x * param("speckle_noise", severity)) < 0.03 * x * param("speckle_noise", severity)
    c = param("shot_noise", severity)
    d = run(grey, "shot_noise", severity).astype(float) / 255 - x
    assert abs(d.std() - np.sqrt(x / c)) < 0.03 * np.sqrt(x / c)
    out = run(grey, "impulse_noise", severity)
    c = param("impulse_noise", severity)
    salt, pepper = (out == 255).mean(), (out == 0).mean()
    assert abs(salt + pepper - c) < 0.1 * c and abs(salt - pepper) < 0.15 * c and ((out == 128) | (out == 0)
                                                                                 | (out == 255)).all()


@pytest.mark.parametrize("name", RELEASE)
def test_every_corruption_is_reproducible_per_seed_and_severity_zero_is_the_image(digits_rgb, name):
    x = digits_rgb[:8]
    if name == "frost":
        needs_frost_images()
    assert np.array_equal(run(x, name, 0), x)
    a = run(x, name, 3, seed=1)
    assert a.dtype == np.uint8 and a.shape == x.shape and np.array_equal(a, run(x, name, 3, seed=1))
    if name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur",
                "snow", "frost", "fog", "spatter", "elastic_transform"):
        assert not np.array_equal(a, run(x, name, 3, seed=2))


def test_distortion_grows_with_severity(images):
    """Mean absolute change from the clean image: it grows severity by severity where the generator's parameters
    order the severities; first to last for the rest (glass blur: sigma 0.4 once at 3, 0.25 twice at 4; saturate
    lowers saturation at 1-2 (most), raises it at 3-5; motion blur, snow: a random angle each)."""

    for name in RELEASE:
        d = [np.abs(run(images, name, s).astype(float) - images).mean() for s in range(6)]
        assert d[0] == 0 and d[1] > 0, (name, d)
        if name not in ("elastic_transform", "saturate"):  # elastic: its affine part shrinks from 1 to 5
            assert d[5] > d[1], (name, d)
        if name in ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "gaussian_blur", "defocus_blur",
                    "zoom_blur", "contrast", "brightness", "pixelate", "jpeg_compression"):
            assert all(a < b for a, b in zip(d[1:], d[2:], strict=False)), (name, d)


# ------------------------------------------------------------------------------- grey and small images
@pytest.mark.parametrize("name", RELEASE)
def test_grey_8x8_digits_work_for_every_corruption(name):
    from sklearn.datasets import load_digits

    if name == "frost":
        needs_frost_images()
    x = torch.from_numpy((load_digits().images[:20] * (255 / 16)).astype(np.uint8))[:, None]
    for s in range(1, 6):
        out = corrupt(x, name, s, seed=0)
        assert out.shape == x.shape and out.dtype == torch.uint8
    assert (corrupt(x, name, 5, seed=0) != x).any()


def test_grey_images_run_channelwise_or_as_the_luma_of_three_equal_channels(digits_rgb):
    grey = digits_rgb[..., :1]
    for name in ("contrast", "gaussian_blur", "zoom_blur", "defocus_blur"):
        assert np.array_equal(run(grey, name, 3), run(np.repeat(grey, 3, -1), name, 3)[..., :1]), name
    # brightness on equal channels keeps them equal: its luma is any channel of the RGB result
    assert np.array_equal(run(grey, "brightness", 3), run(np.repeat(grey, 3, -1), "brightness", 3)[..., :1])


# ------------------------------------------------------------------------------------- names, groups
def test_the_registry_holds_the_releases_19_files_and_all_is_the_benchmarks_15():
    assert sorted(CORRUPTIONS.names()) == sorted(RELEASE) and len(STANDARD_CORRUPTIONS) == 15
    assert expand(("all",)) == STANDARD_CORRUPTIONS and expand(("extras",)) == EXTRA_CORRUPTIONS
    assert expand(("contrast", "all"))[0] == "contrast" and len(expand(("all", "extras"))) == 19
    with pytest.raises(UsageError, match="did you mean 'contrast'"):
        check_corruptions(("contrst",))
    with pytest.raises(UsageError, match="severity 6"):
        corrupt(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "contrast", 6)


# ------------------------------------------------------------------------------------ CIFAR-10-C files
def fake_cifar10c(root, names=("gaussian_noise", "fog"), n=4, seed=0):
    folder = root / "CIFAR-10-C"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(folder / "labels.npy", np.tile(np.arange(n) % 10, 5).astype(np.uint8))
    for name in names:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    return folder


class Constant(torch.nn.Module):
    """Predicts class 0 for images whose mean is below a threshold: accuracies differ by file."""

    def __init__(self):
        super().__init__()
        self.eval()

    def forward(self, x):
        dark = (x.mean(dim=(1, 2, 3)) < 0.5).float()
        return 10 * torch.stack([dark, 1 - dark] + [torch.zeros_like(dark)] * 8, 1)  # logits, not probabilities


def test_the_mean_is_over_the_benchmark_files_only(tmp_path):
    import robustbench_mix as rbm

    folder = fake_cifar10c(tmp_path, names=("gaussian_noise", "fog", "saturate", "spatter"), n=20)
    # make the extras' accuracy very different from the benchmark ones'
    np.save(folder / "saturate.npy", np.zeros((100, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "spatter.npy", np.zeros((100, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.zeros(100, dtype=np.uint8))
    df = rbm.evaluate(Constant(), "cifar10c", data_dir=str(tmp_path)).set_index("attack")["value"]
    per = {n: df[[f"c10c:{n}:{s}" for s in range(1, 6)]].mean() for n in ("gaussian_noise", "fog", "saturate",
                                                                             "spatter")}
    assert df["c10c:mean"] == pytest.approx((per["gaussian_noise"] + per["fog"]) / 2)
    assert df["c10c:extras:mean"] == pytest.approx((per["saturate"] + per["spatter"]) / 2) == 1.0
    assert df["c10c:mean"] != pytest.approx(np.mean(list(per.values())))


def test_on_digits_severity_zero_is_clean_and_accuracy_falls_with_severity(trained):
    from robustbench_mix.evaluation.evaluators import predict

    model, p = trained
    x, y = p.test_x, p.test_y
    clean = (predict(model, x, 500).argmax(1) == y).float().mean().item()
    names = list(STANDARD_CORRUPTIONS)
    accs = [[(predict(model, corrupt(x, n, s), 500).argmax(1) == y).float().mean().item() for s in range(6)]
            for n in names]
    assert all(a[0] == clean for a in accs)
    mean = np.mean(accs, axis=0)  # over the corruptions; single ones need not fall on 8x8 digits
    assert all(a > b for a, b in zip(mean, mean[1:], strict=False)), mean


def test_a_fake_cifar10c_directory_loads_and_evaluates(tmp_path):
    import robustbench_mix as rbm

    fake_cifar10c(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    df = rbm.evaluate(model, "cifar10c", data_dir=str(tmp_path))
    assert sorted(df["attack"].unique())[:3] == ["c10c:fog:1", "c10c:fog:2", "c10c:fog:3"]
    assert len(df[df["attack"].str.match(r"c10c:\w+:\d")]) == 10 and (df["attack"] == "c10c:mean").sum() == 1
    mean = df[df["attack"] == "c10c:mean"]["value"].item()
    assert mean == pytest.approx(df[df["attack"].str.match(r"c10c:\w+:\d")]["value"].mean())
    assert not df["attack"].str.contains("extras").any()
    with pytest.raises(UsageError, match="CIFAR-100-C not found.*labels.npy.*zenodo"):
        rbm.evaluate(model, "cifar100c", data_dir=str(tmp_path))


def test_computed_corruption_rows_keep_extras_out_of_the_mean(small_digits):
    import robustbench_mix as rbm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    df = rbm.evaluate(model, "digits", attacks=(), eps=(), corruptions=("contrast", "saturate"), check_eps=0)
    acc = df.set_index("attack")["value"]
    assert acc["corrupt:mean"] == pytest.approx(acc[[f"corrupt:contrast:{s}" for s in range(1, 6)]].mean())
    assert acc["corrupt:extras:mean"] == pytest.approx(acc[[f"corrupt:saturate:{s}" for s in range(1, 6)]].mean())


def test_stray_npy_files_are_ignored_with_a_warning_and_a_label_column_is_squeezed(tmp_path):
    folder = fake_cifar10c(tmp_path)
    np.save(folder / "README.npy", np.zeros(3))
    np.save(folder / "labels.npy", np.tile(np.arange(4) % 10, 5).astype(np.int64)[:, None])
    with pytest.warns(UserWarning, match="README.npy"):
        stored, y = load_standard("cifar10c", tmp_path)
    assert list(stored) == ["gaussian_noise", "fog"] and y.shape == (20,)


def _labels(v):
    return lambda folder: np.save(folder / "labels.npy", v)


@pytest.mark.parametrize("plant, says", [
    (lambda f: np.save(f / "fog.npy", np.zeros((20, 3, 32, 32), np.uint8)), "fog.npy: expected uint8 images"),
    (lambda f: np.save(f / "fog.npy", np.zeros((20, 28, 28, 3), np.uint8)), "fog.npy: expected uint8 images"),
    (lambda f: np.save(f / "fog.npy", np.zeros((20, 32, 32, 3), np.float32)), "fog.npy: expected uint8 images"),
    (lambda f: np.save(f / "fog.npy", np.zeros((16, 32, 32, 3), np.uint8)), "fog.npy: expected uint8 images"),
    (lambda f: (f / "fog.npy").write_bytes((f / "fog.npy").read_bytes()[:5000]), "fog.npy: not a readable"),
    (lambda f: (f / "fog.npy").write_bytes(np.random.default_rng(0).bytes(4000)), "fog.npy: not a readable"),
    (lambda f: ((f / "fog.npy").unlink(), (f / "fog.npy").mkdir()), "fog.npy: not a file"),
    (lambda f: np.save(f / "fog.npy", np.array([{"a": 1}] * 20, dtype=object)), "fog.npy: not a readable"),
    (_labels(np.tile(np.arange(4), 5).astype(np.float32)), "labels.npy: expected integer labels"),
    (_labels(np.tile([0, 1, 2, -1], 5)), "labels.npy: labels must lie in 0..9"),
    (_labels(np.tile([0, 1, 2, 10], 5)), "labels.npy: labels must lie in 0..9"),
    (_labels(np.arange(20) % 10), "labels.npy: the five severities' labels differ"),
    (_labels(np.zeros((20, 2), np.int64)), "labels.npy: expected integer labels"),
    (_labels(np.zeros(18, np.int64)), "not five severities"),
])
def test_a_broken_cifar10c_folder_is_refused_naming_the_file(tmp_path, plant, says):
    plant(fake_cifar10c(tmp_path))
    with pytest.raises(UsageError, match=says):
        load_standard("cifar10c", tmp_path)


# ---------------------------------------------------- definitions checked against planted bugs (experiments/mutation)


# ------------------------------------------------------------------------------------------- corruptions
# make_cifar_c.py's CIFAR severity lists (Hendrycks & Dietterich, hendrycks/robustness), written out here as
# data so that a changed constant in the registry is caught: the pixel tests read the parameter from the registry
GENERATOR_PARAMS = {
    "gaussian_noise": [0.04, 0.06, .08, .09, .10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [.01, .02, .03, .05, .07],
    "speckle_noise": [.06, .1, .12, .16, .2],
    "gaussian_blur": [.4, .6, 0.7, .8, 1],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
    "fog": [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
    "contrast": [.75, .5, .4, .3, 0.15],
    "brightness": [.05, .1, .15, .2, .3],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
    "jpeg_compression": [80, 65, 58, 50, 40],
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    # the generator's (IMSIZE * a, IMSIZE * b, IMSIZE * c): the registry keeps the fractions
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)],
}


@pytest.mark.parametrize("name", sorted(GENERATOR_PARAMS))
def test_severity_parameters_are_the_generators(name):
    """contrast_param, gaussian_noise_param, fog_param: each corruption's five parameters are the generator's."""
    assert [np.asarray(p).tolist() for p in CORRUPTIONS.get(name).params] == \
        [np.asarray(p).tolist() for p in GENERATOR_PARAMS[name]]


def test_zoom_blur_factors_are_the_generators():
    want = [np.arange(1, e, 0.01) for e in (1.06, 1.11, 1.16, 1.21, 1.26)]
    assert all(np.array_equal(a, b) for a, b in zip(CORRUPTIONS.get("zoom_blur").params, want, strict=True))


# ------------------------------------------------------------------------------------ grey images' luma
def test_a_grey_image_through_a_colour_corruption_is_the_itu_601_luma_of_its_rgb_result():
    """luma_equal_weights: frost blends a coloured photograph, so the grey result is the luma of the three-channel
    result with Pillow's / OpenCV's weights 0.299, 0.587, 0.114 (within the truncation to uint8), not their mean."""
    from robustbench_mix.corruptions import corrupt

    rng = np.random.default_rng(0)
    grey = torch.from_numpy(rng.integers(0, 256, (16, 1, 32, 32), dtype=np.uint8))
    one = corrupt(grey, "frost", 5, seed=3).double()
    rgb = corrupt(grey.expand(-1, 3, -1, -1).contiguous(), "frost", 5, seed=3).double()
    luma = torch.einsum("nchw,c->nhw", rgb, torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64))
    gap = (one[:, 0] - luma).abs()
    assert gap.max() < 1.01 and gap.mean() < 0.6
