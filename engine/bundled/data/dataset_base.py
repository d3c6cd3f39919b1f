"""DatasetBase (the parent of every dataset class) and build_dataset."""
import random
from collections import defaultdict

from engine.bundled.registry import DATASET_REGISTRY, check_availability


class DatasetBase:
    """Holds the train_x / train_u / val / test lists of Datums and their class info.

    Class information (num_classes, lab2cname, classnames) comes from train_x only,
    as in Dassl: test-only classes are not counted.
    """

    dataset_dir = ""  # the dataset's folder name under DATASET.ROOT
    domains = []  # the domain names, for domain adaptation / generalisation datasets

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x  # labeled training data
        self._train_u = train_u  # unlabeled training data (optional)
        self._val = val  # validation data (optional)
        self._test = test  # test data
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source):
        """Largest label + 1 (0 for an empty or missing list)."""
        labels = [item.label for item in data_source or []]
        return max(labels) + 1 if labels else 0

    @staticmethod
    def get_lab2cname(data_source):
        """({label: classname} sorted by label, [classnames in label order]).

        Dassl builds this dict from a set, so its order varies between runs; sorting
        makes logs and anything iterating the dict reproducible.
        """
        first_name = {}
        for item in data_source or []:
            first_name.setdefault(item.label, item.classname)
        lab2cname = {label: first_name[label] for label in sorted(first_name)}
        return lab2cname, list(lab2cname.values())

    def check_input_domains(self, source_domains, target_domains):
        assert len(source_domains) > 0, "source_domains (list) is empty"
        assert len(target_domains) > 0, "target_domains (list) is empty"
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(
                    f"Input domain must belong to {self.domains}, but got [{domain}]"
                )

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False):
        """Keep ``num_shots`` random items per label in each of ``data_sources``.

        Draws come from Python's global ``random`` in Dassl's exact order (sources in
        turn, labels in first-appearance order, one sample/choices call per label), so
        the same seed and the same input order give the same few-shot split as Dassl.
        A label with fewer than ``num_shots`` items is resampled with replacement when
        ``repeat`` is set, otherwise kept whole. Returns one list for one source,
        otherwise a list of lists; ``num_shots < 1`` returns the input unchanged.
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources

        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            picked = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    picked.extend(random.sample(items, num_shots))
                elif repeat:
                    picked.extend(random.choices(items, k=num_shots))
                else:
                    picked.extend(items)
            output.append(picked)

        return output[0] if len(output) == 1 else output

    @staticmethod
    def split_dataset_by_label(data_source):
        """{label: [items]} with labels in first-appearance order."""
        by_label = defaultdict(list)
        for item in data_source:
            by_label[item.label].append(item)
        return by_label

    @staticmethod
    def split_dataset_by_domain(data_source):
        """{domain: [items]} with domains in first-appearance order."""
        by_domain = defaultdict(list)
        for item in data_source:
            by_domain[item.domain].append(item)
        return by_domain


def build_dataset(cfg):
    name = cfg.DATASET.NAME
    check_availability(name, DATASET_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading dataset: {name}")
    return DATASET_REGISTRY.get(name)(cfg)
