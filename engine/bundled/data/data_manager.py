"""DatasetWrapper, build_data_loader and DataManager: from a config to data loaders."""
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.transforms import Compose, Normalize, Resize, ToTensor

from engine.bundled.data.dataset_base import build_dataset
from engine.bundled.data.distributed_samplers import build_distributed_sampler
from engine.bundled.data.image_decoding import open_rgb
from engine.bundled.data.loader_options import loader_worker_options
from engine.bundled.data.samplers import build_sampler
from engine.bundled.data.transforms import INTERPOLATION_MODES, build_transform
from engine.distributed import is_distributed
from engine.user_errors import UserError, user_error

CORRUPT_IMAGE_POLICIES = ("fail", "skip")  # DATALOADER.CORRUPT_IMAGE
SKIPPED_KEY = "_skipped_impaths"  # batch key the skip-collate uses; removed by the loader


@user_error  # train.py shows it as one line ("error: Cannot read image ...")
class CorruptImageError(OSError):
    """An image file that cannot be decoded (the message names the file)."""


def read_image(path):
    """The image at ``path`` as an RGB PIL image; any decoding failure names the file.

    (Dassl retries forever on an IOError; a corrupt file in a split would then hang
    training, so we fail at once with the path instead.) 16-bit, 32-bit and float
    greyscale images are scaled by their value range, or refused when it is unknown
    (``image_decoding``), instead of PIL's silent clipping to white or black.
    """
    try:
        return open_rgb(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(
            f'Cannot read image "{path}": {" ".join(str(exc).split())} (set '
            'DATALOADER.CORRUPT_IMAGE skip to drop unreadable images and count them)'
        ) from exc


def corrupt_image_policy(cfg):
    policy = str(cfg.DATALOADER.get("CORRUPT_IMAGE", "fail")).lower()
    if policy not in CORRUPT_IMAGE_POLICIES:
        raise UserError(
            f"DATALOADER.CORRUPT_IMAGE is {policy!r}; choose one of "
            f"{', '.join(CORRUPT_IMAGE_POLICIES)}"
        )
    return policy


class SkippedImage:
    """What DatasetWrapper returns for an unreadable image under CORRUPT_IMAGE "skip"."""

    def __init__(self, impath, reason):
        self.impath = impath
        self.reason = reason


def collate_skipping_corrupt(items):
    """default_collate over the readable items; the skipped paths go under SKIPPED_KEY."""
    good = [item for item in items if not isinstance(item, SkippedImage)]
    batch = default_collate(good) if good else {}
    batch[SKIPPED_KEY] = [item.impath for item in items if isinstance(item, SkippedImage)]
    return batch


class SkipCountingDataLoader(DataLoader):
    """A DataLoader (CORRUPT_IMAGE "skip") that drops unreadable images and counts them.

    ``skipped_images`` lists the files dropped in the current (or last) pass; at the end
    of each pass (an epoch or a test run) the count is printed. A batch whose images are
    all unreadable is left out of the pass.
    """

    skipped_images = ()

    def __iter__(self):
        self.skipped_images = []
        for batch in super().__iter__():
            skipped = batch.pop(SKIPPED_KEY, [])
            if skipped:
                self.skipped_images.extend(skipped)
                for impath in skipped:
                    print(f'Warning: skipped unreadable image "{impath}"')
            if batch:
                yield batch
        if self.skipped_images:
            print(
                f"Skipped {len(self.skipped_images)} unreadable image(s) in this pass over "
                f"{len(self.dataset)} images (DATALOADER.CORRUPT_IMAGE skip)"
            )


class DatasetWrapper(Dataset):
    """Turns a list of Datums into dicts ``{label, domain, impath, index, img, ...}``.

    With a list of transforms the outputs are ``img``, ``img2``, ``img3`` ...; with
    DATALOADER.K_TRANSFORMS > 1 (training only) each is a list of K augmented views;
    with DATALOADER.RETURN_IMG0 the un-augmented image comes back as ``img0``.
    """

    def __init__(self, cfg, data_source, transform=None, is_train=False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform  # a callable, a list/tuple of callables, or None
        self.is_train = is_train
        # Several augmented views per image only make sense while training.
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        self.corrupt_image = corrupt_image_policy(cfg)

        if self.k_tfm > 1 and transform is None:
            raise ValueError(
                f"Cannot augment the image {self.k_tfm} times (DATALOADER.K_TRANSFORMS) "
                "because transform is None"
            )

        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        img0_steps = [Resize(tuple(cfg.INPUT.SIZE), interpolation=interp), ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            img0_steps.append(Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = Compose(img0_steps)

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        output = {
            "label": item.label,
            "domain": item.domain,
            "impath": item.impath,
            "index": idx,
        }
        try:
            img0 = read_image(item.impath)
        except CorruptImageError as exc:
            if self.corrupt_image != "skip":
                raise
            return SkippedImage(item.impath, str(exc))

        if self.transform is None:
            output["img"] = img0
        elif isinstance(self.transform, (list, tuple)):
            for i, tfm in enumerate(self.transform):
                key = "img" if i == 0 else f"img{i + 1}"
                output[key] = self._transform_image(tfm, img0)
        else:
            output["img"] = self._transform_image(self.transform, img0)

        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm, img0):
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views


def build_data_loader(
    cfg, sampler_type="SequentialSampler", data_source=None, batch_size=64, n_domain=0,
    n_ins=2, tfm=None, is_train=True, dataset_wrapper=None,
):
    if is_distributed():  # each rank loads its own share; BATCH_SIZE is per process
        sampler = build_distributed_sampler(sampler_type, cfg, data_source, is_train)
    else:
        sampler = build_sampler(
            sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
            n_domain=n_domain, n_ins=n_ins,
        )
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper

    skip_corrupt = corrupt_image_policy(cfg) == "skip"
    loader_class = SkipCountingDataLoader if skip_corrupt else DataLoader
    loader = loader_class(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        **({"collate_fn": collate_skipping_corrupt} if skip_corrupt else {}),
        sampler=sampler,
        # Keep the last partial batch when the whole set is smaller than one batch
        # (few-shot training), otherwise an epoch would have no batches at all.
        drop_last=is_train and len(sampler) >= batch_size,
        **loader_worker_options(cfg),
    )
    if len(loader) == 0:
        raise AssertionError(
            f"The data loader is empty ({len(data_source)} items, batch_size={batch_size}, "
            f"sampler={sampler_type})"
        )
    return loader


class DataManager:
    """Builds the dataset named by cfg.DATASET.NAME and its four data loaders."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        loader_x = cfg.DATALOADER.TRAIN_X
        self.train_loader_x = build_data_loader(
            cfg, sampler_type=loader_x.SAMPLER, data_source=dataset.train_x,
            batch_size=loader_x.BATCH_SIZE, n_domain=loader_x.N_DOMAIN, n_ins=loader_x.N_INS,
            tfm=tfm_train, is_train=True, dataset_wrapper=dataset_wrapper,
        )

        self.train_loader_u = None
        if dataset.train_u:
            loader_u = loader_x if cfg.DATALOADER.TRAIN_U.SAME_AS_X else cfg.DATALOADER.TRAIN_U
            self.train_loader_u = build_data_loader(
                cfg, sampler_type=loader_u.SAMPLER, data_source=dataset.train_u,
                batch_size=loader_u.BATCH_SIZE, n_domain=loader_u.N_DOMAIN,
                n_ins=loader_u.N_INS, tfm=tfm_train, is_train=True,
                dataset_wrapper=dataset_wrapper,
            )

        loader_test = cfg.DATALOADER.TEST
        self.val_loader = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, sampler_type=loader_test.SAMPLER, data_source=dataset.val,
                batch_size=loader_test.BATCH_SIZE, tfm=tfm_test, is_train=False,
                dataset_wrapper=dataset_wrapper,
            )
        self.test_loader = build_data_loader(
            cfg, sampler_type=loader_test.SAMPLER, data_source=dataset.test,
            batch_size=loader_test.BATCH_SIZE, tfm=tfm_test, is_train=False,
            dataset_wrapper=dataset_wrapper,
        )

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test

        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg):
        dataset = self.dataset
        rows = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            rows.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            rows.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        rows.append(["# classes", f"{self.num_classes:,}"])
        rows.append(["# train_x", f"{len(dataset.train_x):,}"])
        if dataset.train_u:
            rows.append(["# train_u", f"{len(dataset.train_u):,}"])
        if dataset.val:
            rows.append(["# val", f"{len(dataset.val):,}"])
        rows.append(["# test", f"{len(dataset.test):,}"])
        print(tabulate(rows))
