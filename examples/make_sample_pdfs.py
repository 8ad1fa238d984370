"""Regenerate the sample PDFs in examples/corpus/ (needs `pip install fpdf2`).

Each article section starts a new page, so a test can check that a passage is found on
the page it was written to. The output is byte-for-byte reproducible (fixed creation
date), so re-running this script does not change the files' content hashes.

    python examples/make_sample_pdfs.py
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)

HONEYBEES = (
    "The Waggle Dance: How Honeybees Share Directions",
    [
        (
            "A dance that carries a map",
            [
                "A honeybee forager that has found a rich patch of flowers returns to the hive "
                "and tells her sisters where it is. She does this with a remarkable behaviour "
                "called the waggle dance. The dance encodes both the direction and the distance "
                "of the food, so that other bees can fly straight to a place they have never "
                "visited.",
                "The meaning of the dance was worked out by the Austrian biologist Karl von "
                "Frisch, who studied honeybees for decades. He trained bees to visit feeding "
                "stations at known places and watched how the returning foragers danced. For "
                "this work he shared the 1973 Nobel Prize in Physiology or Medicine with Konrad "
                "Lorenz and Nikolaas Tinbergen.",
                "In the western honeybee, Apis mellifera, the dance takes place on the vertical "
                "surface of a wax comb in the dark hive. The dancer runs forward in a straight "
                "line while shaking her abdomen from side to side, the waggle run. She then "
                "circles back to the start, alternately to the right and to the left, and "
                "repeats the run, tracing a figure of eight many times over.",
            ],
        ),
        (
            "Direction and distance",
            [
                "The direction of the waggle run tells the direction of the food. Straight up "
                "the comb stands for the direction of the Sun. If the food lies 40 degrees to "
                "the right of the Sun, as seen from the hive entrance, the dancer runs 40 "
                "degrees to the right of vertical. A run straight down means the food is "
                "directly away from the Sun. In this way the bees translate an angle relative "
                "to the Sun into an angle relative to gravity.",
                "The duration of the waggle run tells the distance. The farther away the food, "
                "the longer each waggle run lasts; roughly, each second of waggling stands for "
                "about a kilometre of flight, although the exact scale differs between bee "
                "populations. Bees seem to judge distance by the amount of visual motion they "
                "experience during the flight, a kind of optical odometer, rather than by the "
                "energy they use.",
                "For food very close to the hive, within a few tens of metres, foragers "
                "perform a round dance instead, circling without a clear waggle run. Von "
                "Frisch first thought this was a separate signal; later studies showed that "
                "the round dance grades smoothly into the waggle dance as the distance grows.",
                "The Sun moves across the sky during the day, but the bees correct for this. A "
                "forager that dances over a long period gradually changes the angle of her "
                "runs so that they keep pointing to the same place on the ground.",
            ],
        ),
        (
            "Reading the dance, and other signals",
            [
                "In the darkness of the hive, the followers cannot see the dancer. They crowd "
                "around her with their antennae touching her body and pick up the movements "
                "and the vibrations and air currents she makes. Followers also smell the scent "
                "of the flowers on her body and taste samples of the nectar she brings, which "
                "helps them recognise the target once they arrive.",
                "The dance is not only used for food. When a colony swarms, scout bees search "
                "for a new nest cavity and advertise the sites they find with waggle dances on "
                "the surface of the swarm cluster. Better sites receive longer and more "
                "enthusiastic dances, attract more scouts, and eventually win a kind of "
                "collective vote. The biologist Thomas Seeley described this process in his "
                "book Honeybee Democracy.",
                "Honeybees have other signals too. A forager that must wait a long time to "
                "unload her nectar performs a tremble dance, which recruits more bees to work "
                "as nectar receivers. A bee that has been attacked at a food source can deliver "
                "a stop signal, a brief buzzing head-butt that makes dancers end their dances "
                "for a dangerous site.",
            ],
        ),
    ],
)

HEAT_PUMPS = (
    "How a Heat Pump Works",
    [
        (
            "Moving heat uphill",
            [
                "Heat naturally flows from warm places to cold ones. A heat pump uses energy "
                "to move heat in the opposite direction, from a cold place to a warmer one. A "
                "refrigerator is a heat pump: it takes heat out of the food compartment and "
                "releases it into the kitchen through the coils at the back. A heat pump for a "
                "house does the same thing on a larger scale, taking heat from the outdoor "
                "air, the ground or a body of water and releasing it indoors.",
                "The idea is old. William Thomson, later Lord Kelvin, described a heat pump "
                "for warming buildings in 1852, and in the 1850s the Austrian engineer Peter "
                "von Rittinger built one to recover heat in a salt works. Heat pumps became "
                "common for heating only in the late twentieth century, and they are now a "
                "central technology for heating buildings without burning fuel.",
            ],
        ),
        (
            "The vapour-compression cycle",
            [
                "Almost all heat pumps use a fluid called a refrigerant that circulates in a "
                "closed loop through four main parts. In the evaporator, the refrigerant is "
                "cold and at low pressure, colder than the outdoor air. It absorbs heat from "
                "the air and boils, turning into vapour, even on a cold winter day.",
                "The compressor, driven by an electric motor, then squeezes the vapour. "
                "Compression raises its pressure and its temperature, to perhaps 50 to 80 "
                "degrees Celsius. In the condenser, the hot vapour gives up its heat to the "
                "water of the heating system or to the indoor air and condenses back into a "
                "liquid.",
                "Finally, the warm liquid passes through an expansion valve, a narrow opening "
                "where its pressure drops sharply. The pressure drop makes it very cold again, "
                "and it returns to the evaporator to collect more heat. Common refrigerants "
                "include R-410A, R-32 and, increasingly, propane, known as R-290, which has a "
                "very small effect on the climate if it leaks.",
                "Many heat pumps can run in reverse. A reversing valve swaps the roles of the "
                "indoor and outdoor coils, so the same machine cools the house in summer like "
                "an air conditioner.",
            ],
        ),
        (
            "Efficiency and practical design",
            [
                "The efficiency of a heat pump is measured by its coefficient of performance, "
                "or COP: the heat delivered divided by the electricity used. Because the pump "
                "moves heat rather than making it, the COP is usually well above one. A typical "
                "air-source heat pump delivers three to four kilowatt-hours of heat for each "
                "kilowatt-hour of electricity, a COP of 3 to 4. Over a whole heating season, "
                "the average is called the seasonal COP, or SCOP.",
                "The COP falls as the temperature difference between the heat source and the "
                "heating system grows. Physics sets an upper limit, the Carnot COP, equal to "
                "the hot temperature divided by the difference between the hot and cold "
                "temperatures, both measured in kelvin. This is why heat pumps work best with "
                "underfloor heating or large radiators that can warm a house with water at 35 "
                "to 45 degrees Celsius, instead of the 70 degrees common with gas boilers.",
                "Ground-source heat pumps collect heat through pipes buried in trenches or "
                "boreholes. The ground stays at a fairly steady temperature all year, so they "
                "are more efficient in cold weather than air-source units, but they cost more "
                "to install. Air-source units, on the other hand, must occasionally defrost "
                "their outdoor coil, which ices up in cold, damp weather; they do this by "
                "briefly running the cycle in reverse.",
            ],
        ),
    ],
)


def write_pdf(path: Path, title: str, sections: list[tuple[str, list[str]]]) -> None:
    # Imported here so tests can read the articles' text without fpdf2 installed.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_author("mmrag sample corpus (CC BY 4.0)")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(25, 25, 25)
    for number, (heading, paragraphs) in enumerate(sections):
        pdf.add_page()
        if number == 0:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 9, title, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(path))


def main() -> None:
    write_pdf(CORPUS / "honeybee-waggle-dance.pdf", *HONEYBEES)
    write_pdf(CORPUS / "heat-pumps.pdf", *HEAT_PUMPS)


if __name__ == "__main__":
    main()
