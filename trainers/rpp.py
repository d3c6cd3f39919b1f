"""RPP (Chen et al. 2024, "Revisiting Prompt Pretraining"): SAPL deep prompts + KD.

Prompts: separate query/key/value prompts in every prompted layer of the text and the
vision tower (``models.sapl``), each side with its own length and depth (depth 0 turns a
side off: the text side then uses the dataset's hand-crafted template). Supervision: the
hard-label CE (with POMP's local correction when ``TRAINER.CLASS_SAMPLING.K`` > 0) plus
lambda * T^2 * KL(teacher || student) from a frozen zero-shot CLIP teacher over the same
class columns. Every choice the paper leaves open is a key below and is explained in
docs/method.md.

``RPP_Transfer`` starts from prompts pre-trained by ``RPP`` (``TRAINER.RPP_TRANSFER.PROMPTS``):
``--eval-only`` evaluates them zero-shot on any dataset's class names (cross-dataset, DG);
training fine-tunes them (base-to-new), with or without KD.
"""
from torch import nn

from engine import TRAINER_REGISTRY
from engine.bundled.utils.checkpoint import load_weights
from engine.config_extension import add_node, config_extension
from engine.user_errors import UserError
from models.class_prompts import ClassPromptAssembler, FixedClassPrompts
from models.clip_loader import input_resolution, load_clip
from models.deep_prompts import check_depth, init_leading_context, text_layers, text_slots, vision_slots
from models.distillation import kd_loss
from models.sapl import QKV_INIT_CHOICES, RESIDUAL_CHOICES, SAPLPrompts, check_choice
from models.templates import template_for
from models.text_encoder import TextEncoder
from models.zero_shot import ZeroShotClassifier
from trainers.deep_prompt_trainer import DeepPromptTrainer, vision_depth
from trainers.prompt_trainer import find_prompt_checkpoint


@config_extension
def add_rpp_transfer_keys(cfg):
    add_node(cfg, "TRAINER.RPP_TRANSFER", {
        "PROMPTS": "",  # RPP run folder, its prompt_learner folder, or a checkpoint file
    })


class RPPPromptLearner(nn.Module):
    def __init__(self, clip_model, image_encoder, classnames, opts, node, template):
        super().__init__()
        depth_text = check_depth(opts.PROMPT_DEPTH_TEXT, text_layers(clip_model), f"{node}.PROMPT_DEPTH_TEXT")
        depth_vision = vision_depth(image_encoder, opts.PROMPT_DEPTH_VISION, f"{node}.PROMPT_DEPTH_VISION")
        shared = bool(opts.SHARE_QKV)
        qkv_init = check_choice(opts.QKV_INIT, QKV_INIT_CHOICES, f"{node}.QKV_INIT")
        self.residual = check_choice(opts.RESIDUAL, RESIDUAL_CHOICES, f"{node}.RESIDUAL")
        structure = "shared prompts (deep prompting)" if shared else "separate query/key/value prompts"
        print(f"RPP (SAPL, {structure}): text {int(opts.N_CTX_TEXT) if depth_text else 0} tokens x "
              f"depth {depth_text}, vision {int(opts.N_CTX_VISION) if depth_vision else 0} tokens x "
              f"depth {depth_vision}")

        self.learns_text = depth_text > 0
        if self.learns_text:
            n_text = int(opts.N_CTX_TEXT)
            vectors, prompt_prefix = init_leading_context(clip_model, n_text, opts.CTX_INIT)
            print(f'Initial text context: "{prompt_prefix}"')
            self.text_prompts = SAPLPrompts(depth_text, n_text, vectors.shape[1], shared, vectors, qkv_init)
            self.assembler = ClassPromptAssembler(clip_model, classnames, prompt_prefix, n_text)
            self.text_slots = text_slots(n_text)
            entry = TextEncoder(clip_model).prompt_entry(self.text_slots.start, n_text)
            object.__setattr__(self, "text_entry", entry)
        else:
            print(f'Text side without prompts: "{template}"')
            self.fixed_text = FixedClassPrompts(clip_model, [template.format(name) for name in classnames])

        self.vision_prompts = None
        self.learns_vision = depth_vision > 0
        if depth_vision:
            n_vision = int(opts.N_CTX_VISION)
            self.vision_prompts = SAPLPrompts(depth_vision, n_vision, image_encoder.width, shared, None, qkv_init)
            self.vision_slots = vision_slots(n_vision)
            object.__setattr__(self, "vision_entry", image_encoder.prompt_entry())

    @property
    def n_cls(self):
        return self.assembler.n_cls if self.learns_text else self.fixed_text.n_cls

    def text_inputs(self, class_ids=None):
        if not self.learns_text:
            return self.fixed_text.text_inputs(class_ids)
        prompts = self.text_prompts
        hook = prompts.hook(self.text_slots, self.text_entry, self.residual)
        return self.assembler.text_inputs(prompts.first_query, class_ids, hook)

    def vision_inputs(self):
        if self.vision_prompts is None:
            return None, None
        prompts = self.vision_prompts
        return prompts.first_query, prompts.hook(self.vision_slots, self.vision_entry, self.residual)


@TRAINER_REGISTRY.register()
class RPP(DeepPromptTrainer):
    config_node = "RPP"
    config_keys = {
        "N_CTX_TEXT": 4,  # text prompt tokens per layer
        "N_CTX_VISION": 4,  # vision prompt tokens per layer
        "PROMPT_DEPTH_TEXT": 9,  # text layers with prompts (0: text side off, hand-crafted template)
        "PROMPT_DEPTH_VISION": 9,  # vision layers with prompts (0: vision side off)
        "CTX_INIT": "a photo of a",  # layer-0 text prompts start as these words' embeddings
        "SHARE_QKV": False,  # True ties P_Q = P_K = P_V: ordinary deep prompting (ablation)
        "QKV_INIT": "tied",  # tied | independent: initial key/value prompts
        "RESIDUAL": "query",  # query | input: residual stream at the prompt slots
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16 (logits and losses are fp32 regardless)
        "KD": True,  # distil a frozen zero-shot CLIP teacher
        "KD_WEIGHT": 1.0,  # lambda
        "KD_TEMPERATURE": 1.0,  # T
        "TEACHER_BACKBONE": "",  # "" = the student's backbone (shared, loaded once)
        "TEACHER_PATH": "",  # weights file of a different teacher backbone
        "TEACHER_TEMPLATE": "",  # "" = the dataset's hand-crafted template, e.g. "a photo of a {}."
    }
    teacher = None
    # The teacher runs the student's frozen CLIP and the student has no vision prompts:
    # the student's image features are the teacher's, so the image tower runs once.
    teacher_reuses_image_features = False

    @classmethod
    def class_template(cls, cfg):
        """The hand-crafted class prompt (teacher, text side off): TEACHER_TEMPLATE or the dataset's."""
        template = cls.options(cfg).TEACHER_TEMPLATE or template_for(cfg.DATASET.NAME)
        if "{}" not in template:
            raise UserError(f'{cls.config_path()}.TEACHER_TEMPLATE must contain "{{}}" for the class '
                            f"name, got {template!r}")
        return template

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        return RPPPromptLearner(clip_model, image_encoder, classnames, cls.options(cfg),
                                cls.config_path(), cls.class_template(cfg))

    def build_extra_models(self, clip_model):
        opts = self.options(self.cfg)
        if self.evaluating_only:  # the teacher only shapes training
            return
        if not opts.KD:
            print(f"Knowledge distillation: off ({self.config_path()}.KD False)")
            return
        teacher_clip = clip_model
        name = opts.TEACHER_BACKBONE
        if name and name != self.cfg.MODEL.BACKBONE.NAME:
            print(f"Loading the KD teacher CLIP (backbone: {name})")
            teacher_clip = load_clip(name, opts.TEACHER_PATH, device=self.device)
            if input_resolution(teacher_clip) != input_resolution(clip_model):
                raise UserError(
                    f"{self.config_path()}.TEACHER_BACKBONE {name} takes {input_resolution(teacher_clip)} px "
                    f"images but the student takes {input_resolution(clip_model)} px; pick a teacher "
                    "with the student's input resolution"
                )
        template = self.class_template(self.cfg)
        self.teacher = ZeroShotClassifier(teacher_clip, self.classnames, [template]).to(self.device)
        self.teacher_reuses_image_features = (teacher_clip is clip_model
                                              and not self.model.prompt_learner.learns_vision)
        print(f'Knowledge distillation from zero-shot CLIP ({name or self.cfg.MODEL.BACKBONE.NAME}, '
              f'"{template}"): lambda {opts.KD_WEIGHT}, T {opts.KD_TEMPERATURE}')

    def teacher_logits(self, step):
        """The teacher's logits over the step's classes."""
        if self.teacher_reuses_image_features:
            return self.teacher.classify(step.image_features.detach(), step.class_ids)
        with self.autocast():
            return self.teacher(step.image, step.class_ids)

    def loss_terms(self, step):
        terms = super().loss_terms(step)
        if self.teacher is None:
            return terms
        opts = self.options(self.cfg)
        student_logits, teacher_logits = step.logits, self.teacher_logits(step)
        if step.sampled is not None:  # the same columns for both: positive + sampled negatives
            student_logits = step.sampled.arrange(student_logits)
            teacher_logits = step.sampled.arrange(teacher_logits)
        terms["loss_kd"] = float(opts.KD_WEIGHT) * kd_loss(student_logits, teacher_logits, opts.KD_TEMPERATURE)
        return terms


@TRAINER_REGISTRY.register()
class RPP_Transfer(RPP):
    pretrained_prompts = None  # the checkpoint the prompts were loaded from

    def build_extra_models(self, clip_model):
        source = self.cfg.TRAINER.RPP_TRANSFER.PROMPTS
        if not source:
            raise UserError("RPP_Transfer needs TRAINER.RPP_TRANSFER.PROMPTS: the RPP run (or "
                            "checkpoint) whose prompts it starts from")
        path = find_prompt_checkpoint(source)
        if path is None:
            raise UserError(
                f"TRAINER.RPP_TRANSFER.PROMPTS {source!r} is not a checkpoint file, nor a folder "
                "with prompt_learner/model-best.pth.tar or model.pth.tar-<N> (train RPP first: "
                "scripts/rpp/pretrain.sh)"
            )
        checkpoint = load_weights(self.model.prompt_learner, path, hint=self.checkpoint_mismatch_hint,
                                  layout=self.prompt_layout())
        self.pretrained_prompts = path
        print(f'Loaded pre-trained RPP prompts from "{path}" (epoch {checkpoint.get("epoch")})')
        super().build_extra_models(clip_model)

    def no_checkpoint_note(self):
        return (f'Evaluating the pre-trained RPP prompts loaded from "{self.pretrained_prompts}" '
                "(TRAINER.RPP_TRANSFER.PROMPTS; no --model-dir to load a fine-tuned run from)")
