"""PoseScript-style descriptions from posed joints, by rules ("posecodes").

A posecode is one elementary, measurable fact about the 3D joints: an elbow or a knee straight
or bent, an upper arm raised, lowered, forward or out to the side, a hand above the head, the hands
close together, the feet wide apart, the torso leaning forward, a thigh raised, out or back, a foot
in front of the other, the body squatting or kneeling. Joints are
first put in the body's own frame (up = +y, the hips' left-right line = +x, forward = +z), so
the facts do not depend on where the body faces. Captions phrase the facts in random order
(all of them by default, as PoseScript's detailed automatic captions do, or a random subset):
"automatic" ones in PoseScript's plain style, "human" ones more loosely, so text and pose always agree.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.synthetic.poses import J


def body_frame(joints: np.ndarray) -> np.ndarray:
    """Joints in the body's frame: pelvis at the origin, hips' line along +x, +y up. float[24, 3] metres."""
    across = joints[J["left_hip"]] - joints[J["right_hip"]]
    across[1] = 0.0
    x = across / max(np.linalg.norm(across), 1e-8)
    y = np.array([0.0, 1.0, 0.0])
    z = np.cross(x, y)
    return (joints - joints[J["pelvis"]]) @ np.stack([x, y, z], axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(np.linalg.norm(v), 1e-8)


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle at b between b->a and b->c, degrees."""
    u, v = a - b, c - b
    cos = u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-8)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def posecodes(joints: np.ndarray) -> dict[str, str]:
    """The facts that hold for a pose: {code name: category}.

    joints: float[24, 3] metres, SMPL joint order, y up (any facing). Codes present only when
    their measurement is clear of the category boundaries by a margin (as PoseScript's eligibility).
    """
    p = body_frame(np.asarray(joints, np.float64))
    codes: dict[str, str] = {}
    for side in ("left", "right"):
        elbow = _angle(p[J[f"{side}_shoulder"]], p[J[f"{side}_elbow"]], p[J[f"{side}_wrist"]])
        if elbow > 155:
            codes[f"{side}_elbow"] = "straight"
        elif elbow < 70:
            codes[f"{side}_elbow"] = "completely bent"
        elif elbow < 125:
            codes[f"{side}_elbow"] = "bent"
        knee = _angle(p[J[f"{side}_hip"]], p[J[f"{side}_knee"]], p[J[f"{side}_ankle"]])
        if knee > 160:
            codes[f"{side}_knee"] = "straight"
        elif knee < 70:
            codes[f"{side}_knee"] = "completely bent"
        elif knee < 130:
            codes[f"{side}_knee"] = "bent"
        wrist, head, shoulder = p[J[f"{side}_wrist"]], p[J["head"]], p[J[f"{side}_shoulder"]]
        if wrist[1] > head[1] + 0.1:
            codes[f"{side}_hand"] = "above the head"
        elif wrist[1] < shoulder[1] - 0.35 and abs(wrist[0]) < 0.45 and wrist[2] < 0.25:
            codes[f"{side}_hand"] = "down by the side"
        elif abs(wrist[1] - shoulder[1]) < 0.15 and abs(wrist[0]) > 0.55:
            codes[f"{side}_hand"] = "stretched out to the side"
        elif wrist[2] > 0.35:
            codes[f"{side}_hand"] = "in front of the body"
        outwards = 1.0 if side == "left" else -1.0  # the body's left is +x
        upper = _unit(p[J[f"{side}_elbow"]] - shoulder)
        if upper[1] > 0.6:
            codes[f"{side}_upper_arm"] = "raised up"
        elif upper[1] < -0.75:
            codes[f"{side}_upper_arm"] = "pointing down"
        elif upper[2] > 0.6:
            codes[f"{side}_upper_arm"] = "pointing forward"
        elif outwards * upper[0] > 0.75:
            codes[f"{side}_upper_arm"] = "out to the side"
        knee_pt, hip = p[J[f"{side}_knee"]], p[J[f"{side}_hip"]]
        thigh = _unit(knee_pt - hip)
        if knee_pt[1] > hip[1] - 0.15:
            codes[f"{side}_thigh"] = "raised"
        elif outwards * thigh[0] > 0.35:
            codes[f"{side}_thigh"] = "out to the side"
        elif thigh[2] < -0.22:
            codes[f"{side}_thigh"] = "pointing back"
    hands = np.linalg.norm(p[J["left_wrist"]] - p[J["right_wrist"]])
    if hands < 0.2:
        codes["hands"] = "close together"
    elif hands > 1.2:
        codes["hands"] = "far apart"
    feet = abs(p[J["left_ankle"]][0] - p[J["right_ankle"]][0])
    if feet > 0.55:
        codes["legs"] = "wide apart"
    elif feet < 0.12:
        codes["legs"] = "close together"
    fwd = p[J["left_ankle"]][2] - p[J["right_ankle"]][2]
    if fwd > 0.3:
        codes["front_foot"] = "left"
    elif fwd < -0.3:
        codes["front_foot"] = "right"
    torso = p[J["neck"]] - p[J["pelvis"]]
    torso = torso / max(np.linalg.norm(torso), 1e-8)
    if torso[2] > 0.3:
        codes["torso"] = "leaning forward"
    elif torso[2] < -0.25:
        codes["torso"] = "leaning backward"
    elif abs(torso[0]) > 0.25:
        codes["torso"] = "leaning to the left" if torso[0] > 0 else "leaning to the right"
    else:
        codes["torso"] = "upright"
    pelvis_height = p[J["pelvis"]][1] - min(p[J["left_ankle"]][1], p[J["right_ankle"]][1])
    knees_bent = all(codes.get(f"{s}_knee") in ("bent", "completely bent") for s in ("left", "right"))
    if pelvis_height < 0.55 and knees_bent:
        low_knee = min(p[J["left_knee"]][1], p[J["right_knee"]][1]) - min(p[J["left_ankle"]][1], p[J["right_ankle"]][1])
        codes["posture"] = "kneeling" if low_knee < 0.12 else "squatting"
    return codes


_AUTO_PHRASES = {
    "elbow": "the {side} elbow is {cat}",
    "knee": "the {side} knee is {cat}",
    "hand": "the {side} hand is {cat}",
    "upper_arm": "the {side} upper arm is {cat}",
    "thigh": "the {side} thigh is {cat}",
}
_HUMAN_PHRASES = {
    "elbow": {"straight": "{side} arm held straight", "bent": "{side} arm bent at the elbow",
              "completely bent": "{side} arm folded tightly"},
    "knee": {"straight": "{side} leg straight", "bent": "{side} knee bent", "completely bent": "{side} knee fully bent"},
    "hand": {"above the head": "{side} hand up over the head", "down by the side": "{side} hand hanging down",
             "stretched out to the side": "{side} arm stretched sideways", "in front of the body": "{side} hand reaching forward"},
    "upper_arm": {"raised up": "{side} arm raised", "pointing down": "{side} arm lowered",
                  "pointing forward": "{side} arm pointing forward", "out to the side": "{side} arm held out sideways"},
    "thigh": {"raised": "{side} knee lifted up high", "out to the side": "{side} leg out to the side",
              "pointing back": "{side} leg stretched back"},
}  # fmt: skip


def _phrases(codes: dict[str, str], human: bool) -> list[str]:
    """One short phrase per posecode."""
    out = []
    for name, cat in codes.items():
        if name.startswith(("left_", "right_")):
            side, part = name.split("_", 1)
            out.append((_HUMAN_PHRASES[part][cat] if human else _AUTO_PHRASES[part]).format(side=side, cat=cat))
        elif name == "hands":
            out.append(f"the hands are {cat}" if not human else f"hands {cat}")
        elif name == "legs":
            out.append(f"the legs are {cat}" if not human else f"feet {cat}")
        elif name == "front_foot":
            other = "right" if cat == "left" else "left"
            out.append(
                f"the {cat} foot is in front of the {other} foot" if not human else f"{cat} foot stepping forward"
            )
    return out


def describe(joints: np.ndarray, rng: np.random.Generator, human: bool = False, max_facts: int | None = None) -> str:
    """A caption of the pose: its posture and torso, then its limb facts (all, or `max_facts`) in random order.

    joints: float[24, 3] metres, y up. `human` picks the looser style of the human captions.
    """
    codes = posecodes(joints)
    posture = codes.pop("posture", None)
    torso = codes.pop("torso", "upright")
    phrases = _phrases(codes, human)
    rng.shuffle(phrases)
    phrases = phrases[:max_facts]
    if human:
        subject = rng.choice(["Someone", "A person", "This person", "The figure"])
        head = (
            f"{subject} is {posture}" if posture else f"{subject} stands {'upright' if torso == 'upright' else torso}"
        )
        if posture and torso != "upright":
            head += f", {torso}"
        body = (", with " + ", ".join(phrases)) if phrases else ""
        return head + body + "."
    subject = rng.choice(["The person", "The body", "Someone"])
    lead = f"{subject} is {posture} and {torso}." if posture else f"{subject} is {torso}."
    if not phrases:
        return lead
    sentences, i = [], 0
    while i < len(phrases):
        group = phrases[i : i + 2]
        sentences.append(" and ".join(group).capitalize() + ".")
        i += 2
    return lead + " " + " ".join(sentences)
