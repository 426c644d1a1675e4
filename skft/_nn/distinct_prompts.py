"""mode="prompt" tells classes apart only by their prompts: two classes whose prompts read alike cannot be."""


def colliding_prompts(classes, texts, token_ids):
    """The groups of classes whose prompt texts the tokenizer turns into the same tokens.

    Parameters
    ----------
    classes : list
        The labels, in the order of ``texts``.
    texts : list of str
        The prompt text of each class.
    token_ids : sequence of array-like of int
        The token ids of each prompt text.

    Returns
    -------
    list of list of (label, text)
        One list per group of two or more colliding classes; empty when every prompt is distinct.
    """
    by_tokens = {}
    for label, text, ids in zip(classes, texts, token_ids):
        by_tokens.setdefault(tuple(int(token) for token in ids), []).append((label, text))
    return [group for group in by_tokens.values() if len(group) > 1]


def check_distinct_prompts(classes, texts, token_ids):
    """Refuse classes whose prompt texts the tokenizer turns into the same tokens.

    Their class embeddings would be equal, so no text could ever be given one of them rather than
    the other. It happens when labels are made of characters outside the tokenizer's vocabulary
    (emoji become one unknown token), or when ``label_prompts`` gives two classes the same text.

    Parameters
    ----------
    classes : list
        The labels, in the order of ``texts``.
    texts : list of str
        The prompt text of each class.
    token_ids : sequence of array-like of int
        The token ids of each prompt text.

    Raises
    ------
    ValueError
        Naming the classes that collide, their prompts, and ``label_prompts`` as the fix.
    """
    collisions = colliding_prompts(classes, texts, token_ids)
    if not collisions:
        return
    described = "; ".join(
        " and ".join(f"class {label!r} (prompt {text!r})" for label, text in group) for group in collisions
    )
    example = ", ".join(f"{label!r}: '...'" for label, _ in collisions[0])
    raise ValueError(
        f"mode='prompt' tells classes apart by their prompts, but the tokenizer reads the prompts of {described} as "
        "the same tokens (characters outside its vocabulary, such as emoji, become one unknown token), so no text "
        "could be given one rather than the other. Describe each class in words with label_prompts, e.g. "
        f"label_prompts={{{example}}}."
    )
