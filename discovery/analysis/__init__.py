"""What each head does: analyses of a circuit's components, each a plain function returning plain figures.

One module per analysis, each a function of (model, dataset or token set, nodes, settings):

    attention   where heads attend from the answer position (shares per category), positional vs type heads
                told apart on irregular prompts, and random-token previous/induction/duplicate scores
    ov          copy, successor ("next") and greater-than scores of heads' OV circuits over token sets
    dla         direct logit attribution of heads, MLPs and embed on the logit difference
    logit_lens  the residual stream unembedded at every layer and position
    roles       role labels (successor, copy, inhibition, ...) from those figures, with documented thresholds
    plots       PNG/PDF figures (matplotlib's Agg canvas; imported only when drawing)

``stream`` holds the residual-stream and attention-pattern helpers they share. Nothing here imports the
catalog: ``cli/analyze_cmds.py`` stores the figures on a circuit's nodes. Importing this package loads
nothing heavy; import the module you need.
"""

ANALYSES = ("attention", "ov", "dla", "logit-lens")
