"""What every dataset expects on disk and where to get it: the single source for
error messages, tools/check_dataset.py, tools/download_datasets.py and DATASETS.md.

Each ``Requirement.fix`` is a line of DATASETS.md (a test keeps them in sync), so an
error message quotes exactly the step the user has to follow.
"""
from dataclasses import dataclass

HF_MIRROR = "zhengli97/prompt_learning_dataset"
HF_MIRROR_URL = f"https://huggingface.co/{HF_MIRROR}"
GB = 1024 ** 3
MB = 1024 ** 2


@dataclass(frozen=True)
class Requirement:
    path: str  # relative to the dataset folder
    what: str  # e.g. "image folder", "split file"
    fix: str  # the DATASETS.md step that provides it


@dataclass(frozen=True)
class Source:
    """One downloadable file. ``kind``: "http", "gdrive" (file id in ``url``) or "hf" (file in the mirror)."""
    filename: str
    url: str
    kind: str
    approx_bytes: int
    unpack_to: str = "."  # relative to the dataset folder ("" = $DATA); None = keep the file as is
    alive: bool = True  # False where the host is reported dead (the tool then prefers the mirror)


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # registry name (DATASET.NAME)
    config: str  # configs/datasets/<config>.yaml
    folder: str  # dataset folder under DATASET.ROOT
    section: str  # DATASETS.md heading
    requirements: tuple = ()
    official: tuple = ()  # Sources from the original hosts (CoOp's DATASETS.md)
    mirror: tuple = ()  # Sources from the Hugging Face mirror (unpack under $DATA)
    approx_size: str = ""
    split_sizes: tuple = ()  # (train, val, test) images of CoOp's split, when known


def gdrive(filename, file_id, approx_bytes, unpack_to=None):
    return Source(filename, file_id, "gdrive", approx_bytes, unpack_to)


def hf(filename, approx_bytes):
    return Source(filename, filename, "hf", approx_bytes, unpack_to="")


def _classnames_req(folder):
    return Requirement(
        "classnames.txt", "class-name file",
        f"Copy `$DATA/imagenet/classnames.txt` to `$DATA/{folder}/`.",
    )


IMAGENET_CLASSNAMES = gdrive("classnames.txt", "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF", 30_000)

CATALOG = {
    info.name: info
    for info in [
        DatasetInfo(
            "Demo", "demo", "demo", "Demo (synthetic)",
            approx_size="5 MB, generated on first use",
            split_sizes=(480, 120, 600),
        ),
        DatasetInfo(
            "ImageNet", "imagenet", "imagenet", "ImageNet",
            requirements=(
                Requirement(
                    "images/train", "training images",
                    "Extract the ILSVRC-2012 training set to `$DATA/imagenet/images/train/` "
                    "(1,000 folders like `n01440764`).",
                ),
                Requirement(
                    "images/val", "validation images",
                    "Extract the ILSVRC-2012 validation set to `$DATA/imagenet/images/val/`, "
                    "sorted into the same 1,000 class folders.",
                ),
                Requirement(
                    "classnames.txt", "class-name file",
                    "Download `classnames.txt` (Google Drive id `1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF`) "
                    "to `$DATA/imagenet/`.",
                ),
            ),
            official=(IMAGENET_CLASSNAMES,),
            approx_size="147 GB", split_sizes=(1_281_167, 50_000, 50_000),
        ),
        DatasetInfo(
            "Caltech101", "caltech101", "caltech-101", "Caltech101",
            requirements=(
                Requirement(
                    "101_ObjectCategories", "image folder",
                    "Extract `101_ObjectCategories.tar.gz` into `$DATA/caltech-101/`.",
                ),
                Requirement(
                    "split_zhou_Caltech101.json", "split file",
                    "Download `split_zhou_Caltech101.json` (Google Drive id "
                    "`1hyarUivQE36mY6jSomru6Fjd-JzwcCzN`) to `$DATA/caltech-101/`.",
                ),
            ),
            official=(
                Source("101_ObjectCategories.tar.gz",
                       "http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz",
                       "http", 131 * MB, alive=False),
                gdrive("split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN", 500_000),
            ),
            mirror=(hf("caltech-101.zip", 130 * MB),),
            approx_size="130 MB", split_sizes=(4_128, 1_649, 2_465),
        ),
        DatasetInfo(
            "OxfordPets", "oxford_pets", "oxford_pets", "OxfordPets",
            requirements=(
                Requirement("images", "image folder",
                            "Extract `images.tar.gz` into `$DATA/oxford_pets/` (gives `images/`)."),
                Requirement("annotations", "annotation folder",
                            "Extract `annotations.tar.gz` into `$DATA/oxford_pets/` (gives `annotations/`)."),
                Requirement(
                    "split_zhou_OxfordPets.json", "split file",
                    "Download `split_zhou_OxfordPets.json` (Google Drive id "
                    "`1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs`) to `$DATA/oxford_pets/`.",
                ),
            ),
            official=(
                Source("images.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                       "http", 755 * MB),
                Source("annotations.tar.gz",
                       "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz", "http", 18 * MB),
                gdrive("split_zhou_OxfordPets.json", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs", 300_000),
            ),
            mirror=(hf("oxford_pets.zip", 780 * MB),),
            approx_size="800 MB", split_sizes=(2_944, 736, 3_669),
        ),
        DatasetInfo(
            "StanfordCars", "stanford_cars", "stanford_cars", "StanfordCars",
            requirements=(
                Requirement("cars_train", "training images",
                            "Extract `cars_train.tgz` into `$DATA/stanford_cars/`."),
                Requirement("cars_test", "test images",
                            "Extract `cars_test.tgz` into `$DATA/stanford_cars/`."),
                Requirement(
                    "split_zhou_StanfordCars.json", "split file",
                    "Download `split_zhou_StanfordCars.json` (Google Drive id "
                    "`1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT`) to `$DATA/stanford_cars/`.",
                ),
            ),
            official=(
                Source("cars_train.tgz", "http://ai.stanford.edu/~jkrause/car196/cars_train.tgz",
                       "http", 979 * MB, alive=False),
                Source("cars_test.tgz", "http://ai.stanford.edu/~jkrause/car196/cars_test.tgz",
                       "http", 977 * MB, alive=False),
                gdrive("split_zhou_StanfordCars.json", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT", 1 * MB),
            ),
            mirror=(hf("stanford_cars.zip", 1900 * MB),),
            approx_size="1.9 GB", split_sizes=(6_509, 1_635, 8_041),
        ),
        DatasetInfo(
            "OxfordFlowers", "oxford_flowers", "oxford_flowers", "OxfordFlowers",
            requirements=(
                Requirement("jpg", "image folder",
                            "Extract `102flowers.tgz` into `$DATA/oxford_flowers/` (gives `jpg/`)."),
                Requirement(
                    "split_zhou_OxfordFlowers.json", "split file",
                    "Download `split_zhou_OxfordFlowers.json` (Google Drive id "
                    "`1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT`) to `$DATA/oxford_flowers/`.",
                ),
            ),
            official=(
                Source("102flowers.tgz", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
                       "http", 329 * MB),
                Source("imagelabels.mat", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",
                       "http", 500, unpack_to=None),
                gdrive("cat_to_name.json", "1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0", 2_000),
                gdrive("split_zhou_OxfordFlowers.json", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT", 400_000),
            ),
            mirror=(hf("oxford_flowers.zip", 330 * MB),),
            approx_size="330 MB", split_sizes=(4_093, 1_633, 2_463),
        ),
        DatasetInfo(
            "Food101", "food101", "food-101", "Food101",
            requirements=(
                Requirement("images", "image folder",
                            "Extract `food-101.tar.gz` under `$DATA` (gives `$DATA/food-101/images/`)."),
                Requirement(
                    "split_zhou_Food101.json", "split file",
                    "Download `split_zhou_Food101.json` (Google Drive id "
                    "`1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl`) to `$DATA/food-101/`.",
                ),
            ),
            official=(
                Source("food-101.tar.gz", "https://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                       "http", 4650 * MB, unpack_to=""),
                gdrive("split_zhou_Food101.json", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl", 6 * MB),
            ),
            mirror=(hf("food101.zip", 4700 * MB),),
            approx_size="5 GB", split_sizes=(50_500, 20_200, 30_300),
        ),
        DatasetInfo(
            "FGVCAircraft", "fgvc_aircraft", "fgvc_aircraft", "FGVCAircraft",
            requirements=(
                Requirement(
                    "images", "image folder",
                    "Extract `fgvc-aircraft-2013b.tar.gz`, keep only its `data/` folder and rename it "
                    "to `$DATA/fgvc_aircraft/`.",
                ),
                Requirement("variants.txt", "class-name file",
                            "`variants.txt` and `images_variant_{train,val,test}.txt` come with `data/`."),
                Requirement("images_variant_train.txt", "train list",
                            "`variants.txt` and `images_variant_{train,val,test}.txt` come with `data/`."),
                Requirement("images_variant_val.txt", "val list",
                            "`variants.txt` and `images_variant_{train,val,test}.txt` come with `data/`."),
                Requirement("images_variant_test.txt", "test list",
                            "`variants.txt` and `images_variant_{train,val,test}.txt` come with `data/`."),
            ),
            official=(
                Source("fgvc-aircraft-2013b.tar.gz",
                       "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",
                       "http", 2625 * MB, unpack_to=""),
            ),
            mirror=(hf("fgvc_aircraft.zip", 2600 * MB),),
            approx_size="2.6 GB", split_sizes=(3_334, 3_333, 3_333),
        ),
        DatasetInfo(
            "SUN397", "sun397", "sun397", "SUN397",
            requirements=(
                Requirement("SUN397", "image folder",
                            "Extract `SUN397.tar.gz` into `$DATA/sun397/` (gives `SUN397/`)."),
                Requirement(
                    "split_zhou_SUN397.json", "split file",
                    "Download `split_zhou_SUN397.json` (Google Drive id "
                    "`1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq`) to `$DATA/sun397/`.",
                ),
            ),
            official=(
                Source("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
                       "http", 37 * GB, alive=False),
                gdrive("split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq", 4 * MB),
            ),
            mirror=(hf("sun397.zip", 8 * GB),),
            approx_size="37 GB (official) / about 8 GB (mirror)", split_sizes=(15_880, 3_970, 19_850),
        ),
        DatasetInfo(
            "DescribableTextures", "dtd", "dtd", "DTD",
            requirements=(
                Requirement("images", "image folder",
                            "Extract `dtd-r1.0.1.tar.gz` under `$DATA` (gives `$DATA/dtd/images/`)."),
                Requirement(
                    "split_zhou_DescribableTextures.json", "split file",
                    "Download `split_zhou_DescribableTextures.json` (Google Drive id "
                    "`1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x`) to `$DATA/dtd/`.",
                ),
            ),
            official=(
                Source("dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                       "http", 596 * MB, unpack_to=""),
                gdrive("split_zhou_DescribableTextures.json", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x", 300_000),
            ),
            mirror=(hf("dtd.zip", 600 * MB),),
            approx_size="600 MB", split_sizes=(2_820, 1_128, 1_692),
        ),
        DatasetInfo(
            "EuroSAT", "eurosat", "eurosat", "EuroSAT",
            requirements=(
                Requirement("2750", "image folder",
                            "Extract `EuroSAT.zip` into `$DATA/eurosat/` (gives `2750/`)."),
                Requirement(
                    "split_zhou_EuroSAT.json", "split file",
                    "Download `split_zhou_EuroSAT.json` (Google Drive id "
                    "`1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o`) to `$DATA/eurosat/`.",
                ),
            ),
            official=(
                Source("EuroSAT.zip", "http://madm.dfki.de/files/sentinel/EuroSAT.zip", "http", 90 * MB,
                       alive=False),
                gdrive("split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o", 2 * MB),
            ),
            mirror=(hf("eurosat.zip", 90 * MB),),
            approx_size="90 MB", split_sizes=(13_500, 5_400, 8_100),
        ),
        DatasetInfo(
            "UCF101", "ucf101", "ucf101", "UCF101",
            requirements=(
                Requirement(
                    "UCF-101-midframes", "image folder",
                    "Download `UCF-101-midframes.zip` (Google Drive id `10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O`) "
                    "and extract it into `$DATA/ucf101/`.",
                ),
                Requirement(
                    "split_zhou_UCF101.json", "split file",
                    "Download `split_zhou_UCF101.json` (Google Drive id "
                    "`1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y`) to `$DATA/ucf101/`.",
                ),
            ),
            official=(
                gdrive("UCF-101-midframes.zip", "10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O", 1800 * MB, unpack_to="."),
                gdrive("split_zhou_UCF101.json", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y", 1 * MB),
            ),
            mirror=(hf("ucf101.zip", 1800 * MB),),
            approx_size="1.8 GB", split_sizes=(7_639, 1_898, 3_783),
        ),
        DatasetInfo(
            "ImageNetV2", "imagenetv2", "imagenetv2", "ImageNetV2",
            requirements=(
                Requirement(
                    "imagenetv2-matched-frequency-format-val", "image folder",
                    "Extract `imagenetv2-matched-frequency.tar.gz` into `$DATA/imagenetv2/`.",
                ),
                _classnames_req("imagenetv2"),
            ),
            official=(
                Source("imagenetv2-matched-frequency.tar.gz",
                       "https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz",
                       "http", 1260 * MB),
                IMAGENET_CLASSNAMES,
            ),
            mirror=(hf("imagenetv2.zip", 1260 * MB),),
            approx_size="1.3 GB", split_sizes=(0, 0, 10_000),
        ),
        DatasetInfo(
            "ImageNetSketch", "imagenet_sketch", "imagenet-sketch", "ImageNet-Sketch",
            requirements=(
                Requirement(
                    "images", "image folder",
                    "Extract ImageNet-Sketch (https://github.com/HaohanWang/ImageNet-Sketch) so that "
                    "`$DATA/imagenet-sketch/images/` holds the 1,000 `n*` folders.",
                ),
                _classnames_req("imagenet-sketch"),
            ),
            official=(IMAGENET_CLASSNAMES,),
            mirror=(hf("imagenet-sketch.zip", 8600 * MB),),
            approx_size="8.5 GB", split_sizes=(0, 0, 50_889),
        ),
        DatasetInfo(
            "ImageNetA", "imagenet_a", "imagenet-adversarial", "ImageNet-A",
            requirements=(
                Requirement("imagenet-a", "image folder",
                            "Extract `imagenet-a.tar` into `$DATA/imagenet-adversarial/` (gives `imagenet-a/`)."),
                _classnames_req("imagenet-adversarial"),
            ),
            official=(
                Source("imagenet-a.tar", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar",
                       "http", 660 * MB),
                IMAGENET_CLASSNAMES,
            ),
            mirror=(hf("imagenet-adversarial.zip", 660 * MB),),
            approx_size="660 MB", split_sizes=(0, 0, 7_500),
        ),
        DatasetInfo(
            "ImageNetR", "imagenet_r", "imagenet-rendition", "ImageNet-R",
            requirements=(
                Requirement("imagenet-r", "image folder",
                            "Extract `imagenet-r.tar` into `$DATA/imagenet-rendition/` (gives `imagenet-r/`)."),
                _classnames_req("imagenet-rendition"),
            ),
            official=(
                Source("imagenet-r.tar", "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar",
                       "http", 2100 * MB),
                IMAGENET_CLASSNAMES,
            ),
            mirror=(hf("imagenet-rendition.zip", 2100 * MB),),
            approx_size="2.1 GB", split_sizes=(0, 0, 30_000),
        ),
        DatasetInfo(
            "ImageNet21K", "imagenet21k", "imagenet21k_resized", "ImageNet-21K",
            requirements=(
                Requirement(
                    "imagenet21k_train", "training images",
                    "Process the winter-2021 ImageNet-21K release with MIIL's ImageNet-21K-P scripts and put "
                    "`imagenet21k_train/`, `imagenet21k_val/` (and `imagenet21k_small_classes/`) in "
                    "`$DATA/imagenet21k_resized/`.",
                ),
                Requirement(
                    "imagenet21k_val", "validation images",
                    "Process the winter-2021 ImageNet-21K release with MIIL's ImageNet-21K-P scripts and put "
                    "`imagenet21k_train/`, `imagenet21k_val/` (and `imagenet21k_small_classes/`) in "
                    "`$DATA/imagenet21k_resized/`.",
                ),
            ),
            official=(
                Source("imagenet21k_miil_tree.pth",
                       "https://miil-public-eu.oss-eu-central-1.aliyuncs.com/model-zoo/ImageNet_21K_P/"
                       "resources/winter21/imagenet21k_miil_tree.pth", "http", 1 * MB, unpack_to=None),
            ),
            approx_size="about 250 GB (processed, resized)", split_sizes=(),
        ),
    ]
}

# ImageNet-21K reads either of two class-name files, and a third folder only for the full
# class set, so these are checked by the dataset class rather than by require_layout.
IN21K_CLASSNAMES = Requirement(
    "imagenet21k_miil_tree.pth", "class-description file",
    "Download `imagenet21k_miil_tree.pth` (MIIL's winter-21 semantic tree) to `$DATA/imagenet21k_resized/`, "
    "or write `classnames.txt` there with one `<wnid> <class name>` per line.",
)
IN21K_SMALL_CLASSES = Requirement(
    "imagenet21k_small_classes", "small-classes folder (needed by DATASET.IN21K_CLASS_SET all)",
    "Keep `imagenet21k_small_classes/` from the MIIL processing next to `imagenet21k_train/`.",
)

CONFIG_TO_NAME = {info.config: name for name, info in CATALOG.items()}


def lookup(name_or_config):
    """A DatasetInfo by registry name ("OxfordPets") or config stem ("oxford_pets")."""
    if name_or_config in CATALOG:
        return CATALOG[name_or_config]
    if name_or_config in CONFIG_TO_NAME:
        return CATALOG[CONFIG_TO_NAME[name_or_config]]
    raise KeyError(
        f"Unknown dataset {name_or_config!r}; known: {', '.join(sorted(CONFIG_TO_NAME))}"
    )
