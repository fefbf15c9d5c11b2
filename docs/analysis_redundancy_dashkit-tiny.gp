# stability vs redundancy curve
# written by `dashkit report` / `dashkit plot` from the store; data: analysis_redundancy_dashkit-tiny.dat
# redraw (restyle freely): gnuplot analysis_redundancy_dashkit-tiny.gp   (variables below may be preset with -e)
if (!exists("pngterm")) pngterm = "pngcairo"
if (!exists("outpng")) outpng = "analysis_redundancy_dashkit-tiny.png"
if (!exists("outsvg")) outsvg = "analysis_redundancy_dashkit-tiny.svg"
set terminal @pngterm size 960,640 noenhanced
set output outpng
set title "dashkit-tiny: attention received in layers > 3 by delta-decile at layer 3 (Spearman 0.02)"
set xlabel "decile of delta at l_s (1 = most stable)"
set ylabel "received attention (normalised by visible queries)"
set logscale y
set grid
set xtics 1
unset key
plot "analysis_redundancy_dashkit-tiny.dat" using 1:3 with linespoints lw 2 pt 7 lc rgb "#b2182b"
set terminal svg size 960,640 dynamic noenhanced
set output outsvg
replot
unset output
