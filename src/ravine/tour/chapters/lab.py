"""The tour's chapter on :mod:`ravine.surfaces`: the lecture's error-surface stories."""

from __future__ import annotations

from ravine.claims import Claim
from ravine.progress import Progress, part
from ravine.tour._model import Chapter

__all__ = ["KEY", "chapter"]

KEY = "lab"


def chapter(*, full: bool, progress: Progress) -> Chapter:
    """The ravine, the crescent, the saddle, momentum through a local dip; every run's figures."""
    from ravine.report.surfaces import story_figures
    from ravine.surfaces.stories import STORIES

    claims: list[Claim] = []
    figures = []
    names = list(STORIES)
    for index, name in enumerate(names):
        story = STORIES[name](
            progress=part(progress, start=index / len(names), width=1 / len(names), stage=name)
        )
        claims.extend(story.claims)
        figures += [
            (f"lab-{story.name}-{stem}", figure, caption)
            for stem, (figure, caption) in story_figures(story).items()
        ]
    return Chapter(
        key=KEY,
        title="The lab: the lecture's error surfaces, many optimizers at once",
        text=(
            "The lecture's 'error surface is rugged' story on analytic 2-D surfaces, with its own settings: "
            "on an elongated bowl, gradient descent with a learning rate that suits the flat direction "
            "oscillates between the walls of the steep one, so the loss stops falling while the gradient "
            "stays large; a learning rate small enough for the walls crawls along the floor; Adagrad's "
            "per-parameter η/σ fixes both but bursts sideways once σ on the steep axis has become small; "
            "learning-rate decay calms the bursts. RMSProp adapts faster than Adagrad where the slope changes "
            "(the crescent); at a saddle gradient descent stalls with a small gradient, and momentum or a "
            "step along the negative-curvature direction escapes. All configurations of a story advance "
            "together in one vectorised computation."
        ),
        claims=claims,
        figures=figures,
    )
