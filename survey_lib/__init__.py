"""survey_lib: the helper package of the companion to "Reinforcement Learning Enhanced LLMs:
A Survey" (Wang et al., arXiv 2412.10400) and Sun's RL perspective on RLHF (arXiv 2310.06147).

Each module names the chapter that defines it; the chapters in `chapters/` call it.
"""
__version__ = "0.1.0"
